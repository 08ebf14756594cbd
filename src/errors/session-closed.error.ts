import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown when a session is used after `close()`. */
export class SessionClosedError extends TypeOrmContextError {}
