import type { DataSource, QueryRunner } from 'typeorm';
import { messages } from '../errors/messages.js';
import { bounded } from './bounded-manager.js';
import type { ConnectionWaits } from './connection-wait.js';
import { installSqliteWriter } from './sqlite-writer.js';
import { isSqlite } from './transaction-dialect.js';

/**
 * Puts a SQLite data source (called `name`) behind its writer at startup: the query runners plain
 * TypeORM code gets take the turn on the one connection as sessions do, each waiting at most `ms`
 * (acquireTimeout), then failing with `ConnectionAcquireTimeoutError`. Nothing for other drivers.
 */
export function queueSqlite(
  name: string,
  dataSource: DataSource,
  ms: number,
  waits: ConnectionWaits,
): void {
  if (!isSqlite(dataSource.options.type)) return;
  const timedOut = () => messages.sqlitePlainTimeout(name, ms);
  installSqliteWriter(dataSource, (runner) => {
    const guarded = bounded(runner, dataSource, name, ms, waits, timedOut);
    // sql.js's runner sends on the driver's connection without asking `connect()`: ask it first.
    const query = guarded.query;
    guarded.query = async function (this: QueryRunner, ...args: Parameters<QueryRunner['query']>) {
      await this.connect();
      return query.apply(this, args) as Promise<never>;
    } as QueryRunner['query'];
    return guarded;
  });
}
