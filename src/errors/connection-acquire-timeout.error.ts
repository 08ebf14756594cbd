import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown when a session cannot get a connection from its pool within `acquireTimeout`. */
export class ConnectionAcquireTimeoutError extends TypeOrmContextError {}
