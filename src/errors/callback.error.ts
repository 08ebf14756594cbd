import { TypeOrmContextError } from './typeorm-context.error.js';

/**
 * Thrown, with `callbackErrors: 'throw'`, when an `afterCommit`, `afterRollback` or
 * `afterCompletion` callback failed; the transaction's outcome stands. `cause` is the first error.
 */
export class CallbackError extends TypeOrmContextError {}
