import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by a commit of a transaction that an escaped error marked rollback-only. */
export class RollbackOnlyError extends TypeOrmContextError {}
