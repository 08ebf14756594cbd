import { TypeOrmContextError } from './typeorm-context.error.js';

/**
 * Thrown when a read-only transaction that runs on a replica tries to write (refused before it is
 * sent for TypeORM's writes, mapped from the server's SQLSTATE 25006 for raw SQL).
 */
export class ReplicaWriteError extends TypeOrmContextError {}
