import { TypeOrmContextError } from './typeorm-context.error.js';

/**
 * Thrown when a session's connection broke (the server terminated it, a failover, a network
 * failure): the transaction is gone, rolled back by the server. `cause` is the driver's error.
 */
export class ConnectionLostError extends TypeOrmContextError {}
