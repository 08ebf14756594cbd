import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by a commit of a transaction the server had already aborted after a failed statement. */
export class TransactionAbortedError extends TypeOrmContextError {}
