import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by commit(), rollback() or close() of a session from inside one of its own blocks or hooks. */
export class SessionBusyError extends TypeOrmContextError {}
