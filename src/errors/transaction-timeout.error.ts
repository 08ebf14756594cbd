import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown when a transactional block outlives its `timeout`; the work was rolled back. */
export class TransactionTimeoutError extends TypeOrmContextError {}
