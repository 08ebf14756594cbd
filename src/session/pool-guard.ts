import type { DataSource } from 'typeorm';
import { isPostgres } from './transaction-dialect.js';

/** A pg client, as far as the guard needs it. */
interface GuardedClient {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** pg-pool: its clients so far, and the event of each new one. */
interface PgPool {
  _clients?: GuardedClient[];
  on(event: 'connect', listener: (client: GuardedClient) => void): unknown;
}

/**
 * Gives every connection of the data source's PostgreSQL pools (the primary's and, with TypeORM
 * `replication`, each replica's) an `'error'` listener of its own for its whole life (module
 * option `guardPool`). pg-pool removes its listener when it hands a connection out, and TypeORM's
 * runners attach theirs a few promise turns later: an error the driver emits in between (a
 * backend killed as the connection became ready) would otherwise crash the process. Plain reads
 * outside any context go to a replica's pool. The library's own sessions are guarded without it.
 * mysql2 connections get a listener from TypeORM for their whole life already. `report` gets the
 * replica's number (from 1, in `replication.slaves` order), none for the primary.
 */
export function guardPool(
  dataSource: DataSource,
  report: (error: Error, replica?: number) => void,
): void {
  if (!isPostgres(dataSource.options.type)) return;
  const { master, slaves } = dataSource.driver as unknown as { master?: PgPool; slaves?: PgPool[] };
  if (master) guardEach(master, (error) => report(error));
  slaves?.forEach((pool, i) => guardEach(pool, (error) => report(error, i + 1)));
}

function guardEach(pool: PgPool, report: (error: Error) => void): void {
  const guard = (client: GuardedClient) => client.on('error', report);
  for (const client of pool._clients ?? []) guard(client);
  pool.on('connect', guard);
}
