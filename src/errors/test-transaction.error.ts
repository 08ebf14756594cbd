import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by `TestTransaction` when it is used out of order (two at once, after `rollback()`). */
export class TestTransactionError extends TypeOrmContextError {}
