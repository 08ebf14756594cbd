import { readFileSync } from 'node:fs';
import type { DataSource, EntityManager } from 'typeorm';
import { writerOf } from '../../src/session/sqlite-writer.js';

/** A database engine the suite runs against, with the SQL that asks it what really happened. */
export interface Engine {
  name: 'postgres' | 'mariadb' | 'better-sqlite3' | 'sqljs';
  /** TypeORM connection options (without entities). */
  options:
    | { type: 'postgres' | 'mariadb'; url: string }
    | { type: 'better-sqlite3'; database: string }
    | { type: 'sqljs' };
  /** SQL returning `{ id }`: the current transaction's id, or null when none is assigned. */
  txidSql: string;
  /** SQL returning `{ id }`: the server-side id of the connection. */
  backendSql: string;
  /** SQL that sleeps for `seconds`. */
  sleepSql(seconds: number): string;
}

const postgres: Engine = {
  name: 'postgres',
  options: {
    type: 'postgres',
    url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  },
  txidSql: 'SELECT txid_current_if_assigned()::text AS id',
  backendSql: 'SELECT pg_backend_pid() AS id',
  sleepSql: (seconds) => `SELECT pg_sleep(${seconds})`,
};

const mariadb: Engine = {
  name: 'mariadb',
  options: { type: 'mariadb', url: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test' },
  txidSql:
    'SELECT CAST(trx_id AS CHAR) AS id FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()',
  backendSql: 'SELECT CONNECTION_ID() AS id',
  sleepSql: (seconds) => `SELECT SLEEP(${seconds})`,
};

/** PostgreSQL always; MariaDB when MYSQL_URL is set (`.ci/run` sets it). */
export const engines: Engine[] = process.env.MYSQL_URL ? [postgres, mariadb] : [postgres];

/** SQLite has no transaction or connection ids: every session runs on the one connection. */
const sqliteProbes = {
  txidSql: "SELECT NULL AS id WHERE 'no transaction ids on SQLite' IS NULL",
  backendSql: "SELECT 'the one connection' AS id",
  sleepSql: () => {
    throw new Error('SQLite cannot sleep in SQL: wait in the test');
  },
};

/** better-sqlite3 on an in-memory database (the one connection of the data source). */
export const betterSqlite3: Engine = {
  name: 'better-sqlite3',
  options: { type: 'better-sqlite3', database: ':memory:' },
  ...sqliteProbes,
};

/** sql.js (WebAssembly), in memory. */
export const sqljs: Engine = { name: 'sqljs', options: { type: 'sqljs' }, ...sqliteProbes };

/** The major version of an installed package. */
const majorOf = (name: string): number =>
  Number(
    (
      JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8')) as { version: string }
    ).version.split('.')[0],
  );

/**
 * Where better-sqlite3 is claimed and run: TypeORM 1.x (whose driver wraps its errors and awaits
 * query events; TypeORM 0.3's does neither, so 0.3 runs SQLite through sql.js), better-sqlite3 12,
 * and Node before 24 (better-sqlite3 12 aborts the process on Node 24 in its native Statement
 * finalizer, WiseLibs/better-sqlite3#1515, not fixed upstream).
 */
export const betterSqlite3Claimed =
  majorOf('typeorm') >= 1 &&
  majorOf('better-sqlite3') >= 12 &&
  Number(process.versions.node.split('.')[0]) < 24;

/** A describe block on better-sqlite3 itself (a file database, its own options), where it is claimed. */
export function describeBetterSqlite3(name: string, tests: () => void): void {
  if (betterSqlite3Claimed) describe(name, tests);
}

/** The SQLite engines: no server needed, so always (better-sqlite3 where it is claimed). */
export const sqliteEngines: Engine[] = betterSqlite3Claimed ? [betterSqlite3, sqljs] : [sqljs];

/** The server engines, then the SQLite ones: for specs whose every test makes sense on SQLite. */
export const enginesAndSqlite: Engine[] = [...engines, ...sqliteEngines];

/**
 * SQL that keeps the connection busy for about `seconds`: the server engines sleep; SQLite cannot,
 * so it counts (both SQLite drivers run it synchronously: the event loop waits with it).
 */
export function slowSql(engine: Engine, seconds: number): string {
  if (!isSqliteEngine(engine)) return engine.sleepSql(seconds);
  const steps = Math.max(1, Math.round(seconds * 6_000_000));
  return `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${steps}) SELECT count(*) AS n FROM n`;
}

/** Whether `engine` is one of the SQLite ones. */
export function isSqliteEngine(engine: Engine): boolean {
  return engine.name === 'better-sqlite3' || engine.name === 'sqljs';
}

/** Whether a transaction is open on a SQLite data source's one connection right now. */
function sqliteInTransaction(dataSource: DataSource): boolean {
  const db = (dataSource.driver as unknown as { databaseConnection: Record<string, unknown> })
    .databaseConnection;
  if (typeof db.inTransaction === 'boolean') return db.inTransaction;
  // sql.js tells it only by refusing a nested BEGIN (asked only while no turn is held).
  const run = db.run as (sql: string) => void;
  try {
    run.call(db, 'BEGIN');
  } catch {
    return true;
  }
  run.call(db, 'ROLLBACK');
  return false;
}

/** What `txid()` returns on SQLite while a transaction is open: SQLite numbers no transactions. */
export const SQLITE_OPEN_TRANSACTION = 'open (SQLite has no transaction ids)';

/**
 * The current transaction id seen through `manager` (null when none is assigned). SQLite has no
 * ids: there it is SQLITE_OPEN_TRANSACTION while the one connection is in a transaction, else null,
 * so two transactions on SQLite cannot be told apart by it.
 */
export async function txid(engine: Engine, manager: EntityManager): Promise<string | null> {
  if (isSqliteEngine(engine))
    return sqliteInTransaction(manager.connection) ? SQLITE_OPEN_TRANSACTION : null;
  if (engine.name === 'mariadb') return innodbTxid(manager);
  const rows: Array<{ id: string | null }> = await manager.query(engine.txidSql);
  return rows[0]?.id ?? null;
}

/**
 * MariaDB's transaction id of the connection behind `manager` (null when none is started).
 * Read live from the InnoDB monitor: information_schema.innodb_trx is a server-wide cache,
 * refreshed only once nobody read it for 0.1 s, so any other process polling it kept it stale.
 */
async function innodbTxid(manager: EntityManager): Promise<string | null> {
  const [own]: Array<{ id: unknown }> = await manager.query('SELECT CONNECTION_ID() AS id');
  return (await innodbTransactions(manager)).get(String(own!.id)) ?? null;
}

/** The started InnoDB transactions by connection id (a read-only one by its handle), live. */
async function innodbTransactions(manager: EntityManager): Promise<Map<string, string>> {
  const [status]: Array<{ Status: string }> = await manager.query('SHOW ENGINE INNODB STATUS');
  const started = new Map<string, string>();
  for (const entry of status!.Status.split('\n---TRANSACTION ').slice(1)) {
    const thread = /(?:MySQL|MariaDB) thread id (\d+)/.exec(entry)?.[1];
    const [id, state] = entry.split('\n')[0]!.split(', ');
    if (thread !== undefined && !state?.startsWith('not started')) started.set(thread, id!);
  }
  return started;
}

/** The server-side connection id behind `manager`. */
export async function backendId(engine: Engine, manager: EntityManager): Promise<string> {
  const rows: Array<{ id: unknown }> = await manager.query(engine.backendSql);
  return String(rows[0]?.id);
}

/** Connections of the data source's pool that are checked out right now. */
export function checkedOut(dataSource: DataSource): number {
  const writer = writerOf(dataSource);
  if (writer !== undefined) return writer.idle ? 0 : 1;
  const driver = dataSource.driver as unknown as {
    master?: { totalCount: number; idleCount: number };
    pool?: { _allConnections: { length: number }; _freeConnections: { length: number } };
  };
  if (driver.master) return driver.master.totalCount - driver.master.idleCount;
  if (driver.pool) return driver.pool._allConnections.length - driver.pool._freeConnections.length;
  throw new Error('unknown pool');
}

/** Asks for a connection of the data source's pool waiting right now (its pool is full). */
export function waitingForPool(dataSource: DataSource): number {
  const writer = writerOf(dataSource);
  if (writer !== undefined) return writer.queued;
  const driver = dataSource.driver as unknown as {
    master?: { waitingCount: number };
    pool?: { _connectionQueue: { length: number } };
  };
  if (driver.master) return driver.master.waitingCount;
  if (driver.pool) return driver.pool._connectionQueue.length;
  throw new Error('unknown pool');
}

/** Sessions the server sees open inside a transaction but doing nothing, for this database. */
export async function idleInTransaction(engine: Engine, dataSource: DataSource): Promise<number> {
  if (isSqliteEngine(engine)) {
    const writer = writerOf(dataSource);
    return writer?.idle !== false && sqliteInTransaction(dataSource) ? 1 : 0;
  }
  if (engine.name === 'mariadb') {
    const threads = [...(await innodbTransactions(dataSource.manager)).keys()];
    if (threads.length === 0) return 0;
    const rows: Array<{ n: number | string }> = await dataSource.query(
      `SELECT count(*) AS n FROM information_schema.processlist WHERE command = 'Sleep' AND db = DATABASE() AND id IN (${threads.join(', ')})`,
    );
    return Number(rows[0]?.n);
  }
  const rows: Array<{ n: number | string }> = await dataSource.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
  );
  return Number(rows[0]?.n);
}

/**
 * The driver connection of the pool (pg `Client`, mysql2 connection) that `manager`'s session holds
 * right now. Through PgBouncer this, not the server's backend id, tells which pool connection a
 * session has: PgBouncer may run each transaction on any server connection.
 */
export function poolConnection(manager: EntityManager): unknown {
  return (manager.queryRunner as { databaseConnection?: unknown } | undefined)?.databaseConnection;
}

/** The isolation level of the transaction `manager` is in, as the database reports it. */
export async function isolationOf(engine: Engine, manager: EntityManager): Promise<string> {
  if (engine.name === 'postgres') {
    const rows: Array<{ transaction_isolation: string }> = await manager.query(
      'SHOW transaction_isolation',
    );
    return String(rows[0]?.transaction_isolation).toUpperCase();
  }
  // InnoDB lists a transaction once it wrote; its table is a cache refreshed only once nobody
  // read it for 0.1 s (another process polling it keeps it stale): read until the row shows.
  // The row must be this transaction's (its id, read live), not the cached one of the last.
  await manager.query("INSERT INTO example (text) VALUES ('isolation_probe')");
  const id = await txid(engine, manager);
  let rows: Array<{ level: string }> = [];
  for (let tries = 0; rows.length === 0 && tries < 20; tries++) {
    await manager.query('DO SLEEP(0.12)');
    rows = await manager.query(
      'SELECT trx_isolation_level AS level FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID() AND CAST(trx_id AS CHAR) = ?',
      [id],
    );
  }
  return String(rows[0]?.level).toUpperCase();
}
