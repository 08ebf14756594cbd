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
 * Gives every connection of the data source's PostgreSQL pool an `'error'` listener of its own
 * for its whole life (module option `guardPool`). pg-pool removes its listener when it hands a
 * connection out, and TypeORM's runners attach theirs a few promise turns later: an error the
 * driver emits in between (a backend killed as the connection became ready) would otherwise
 * crash the process. The library's own sessions are guarded without it. mysql2 connections get a
 * listener from TypeORM for their whole life already.
 */
export function guardPool(dataSource: DataSource, report: (error: Error) => void): void {
  if (!isPostgres(dataSource.options.type)) return;
  const pool = (dataSource.driver as unknown as { master?: PgPool }).master;
  if (!pool) return;
  const guard = (client: GuardedClient) => client.on('error', report);
  for (const client of pool._clients ?? []) guard(client);
  pool.on('connect', guard);
}
