import { TypeOrmContextError } from './typeorm-context.error.js';

/**
 * Thrown when the connection broke while a COMMIT was on its way: the database may have
 * committed or not, and nobody can tell from this connection. `cause` is the driver's error.
 */
export class CommitOutcomeUnknownError extends TypeOrmContextError {}
