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
  installSqliteWriter(dataSource, (runner) =>
    guardStatements(bounded(runner, dataSource, name, ms, waits, timedOut)),
  );
}

/** QueryRunner members TypeORM keeps read-only that the guard reads. */
type Internals = QueryRunner & { isReleased: boolean };

/**
 * The plain runner's statements on SQLite: each takes the turn first (sql.js's runner sends on the
 * driver's connection without asking `connect()`, better-sqlite3's skips it for a cached statement),
 * none is sent once the runner was released (TypeORM refuses it, and no turn is taken for it), and
 * `release()` gives the turn back only once the statements still on their way settled: one sent
 * late would run inside the next holder's transaction.
 */
function guardStatements(runner: QueryRunner): QueryRunner {
  const internals = runner as Internals;
  const query = runner.query;
  const release = runner.release;
  const sending = new Set<Promise<unknown>>();
  runner.query = function (this: QueryRunner, ...args: Parameters<QueryRunner['query']>) {
    if (internals.isReleased) return query.apply(this, args);
    const sent = this.connect().then(() => query.apply(this, args) as Promise<unknown>);
    sending.add(sent);
    const settled = () => void sending.delete(sent);
    sent.then(settled, settled);
    return sent as Promise<never>;
  } as QueryRunner['query'];
  runner.release = async function (this: QueryRunner) {
    if (internals.isReleased) return;
    while (sending.size > 0) await Promise.allSettled([...sending]);
    return release.call(this);
  };
  return runner;
}
