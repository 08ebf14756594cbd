import { TypeOrmContextError } from './typeorm-context.error.js';

/**
 * Thrown when no replica accepts a connection for a read-only transaction and the module option
 * `replicaDown` is `'fail'`. `cause` is the driver's error.
 */
export class ReplicaUnavailableError extends TypeOrmContextError {}
