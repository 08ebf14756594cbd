import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by Propagation.NEVER when a transaction is current. */
export class TransactionNotAllowedError extends TypeOrmContextError {}
