import type { DataSource } from 'typeorm';
import { messages } from '../errors/messages.js';
import { UnsupportedDriverError } from '../errors/unsupported-driver.error.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';
import { writerOf } from './sqlite-writer.js';

/** How a transaction begins: isolation level and access mode. */
export interface BeginOptions {
  isolationLevel?: IsolationLevel;
  readOnly?: boolean;
  /** Milliseconds after which PostgreSQL cancels a statement of this transaction. */
  timeout?: number;
  /** With `readOnly`: `false` keeps the transaction on the primary (see `connection-route.ts`). */
  replica?: boolean;
  /** Who begins the transaction, for messages (`UsersService.report()`, `sessionFactory.atomic()`). */
  label?: string;
}

const POSTGRES = new Set(['postgres', 'cockroachdb', 'aurora-postgres']);
const MYSQL = new Set(['mysql', 'mariadb', 'aurora-mysql']);
const SQLITE = new Set(['better-sqlite3', 'sqljs']);

/** Whether `type` is a PostgreSQL-family driver. */
export function isPostgres(type: string): boolean {
  return POSTGRES.has(type);
}

/** Whether `type` is a MySQL-family driver. */
export function isMysql(type: string): boolean {
  return MYSQL.has(type);
}

/** Whether `type` is a SQLite driver the library drives (one connection, taken in turns). */
export function isSqlite(type: string): boolean {
  return SQLITE.has(type);
}

/** Throws at startup for drivers whose transactions the library cannot drive. */
export function assertSupportedDriver(type: string): void {
  if (!POSTGRES.has(type) && !MYSQL.has(type) && !SQLITE.has(type)) {
    throw new UnsupportedDriverError(messages.unsupportedDriver(type));
  }
}

const PLAIN_BEGIN: readonly string[] = Object.freeze(['START TRANSACTION']);
/**
 * SQLite: `BEGIN IMMEDIATE` takes the database's write lock at once, so a transaction that reads
 * and then writes never meets another process's writer half-way (SQLITE_BUSY, not retried by the
 * busy timeout); a read-only one begins deferred, made read-only by `query_only` (reset when its
 * turn is given back, see `WriterTurn`). Every SQLite transaction is SERIALIZABLE: any isolation
 * level asked is honoured by a stronger one.
 */
const SQLITE_BEGIN: readonly string[] = Object.freeze(['BEGIN IMMEDIATE']);
const SQLITE_READ_ONLY: readonly string[] = Object.freeze(['PRAGMA query_only = ON', 'BEGIN']);

/** The statement that begins a transaction without options on `type`. */
export function plainBegin(type: string): string {
  return SQLITE.has(type) ? SQLITE_BEGIN[0]! : PLAIN_BEGIN[0]!;
}

/** The statements that begin a transaction on `type`, in order (one round trip on PostgreSQL). */
export function beginStatements(type: string, options: BeginOptions): readonly string[] {
  const { isolationLevel, readOnly, timeout } = options;
  if (SQLITE.has(type)) return readOnly ? SQLITE_READ_ONLY : SQLITE_BEGIN;
  // The usual case, shared: every session without options begins the same way.
  if (!isolationLevel && !readOnly && !timeout) return PLAIN_BEGIN;
  if (POSTGRES.has(type)) {
    const modes = [isolationLevel && `ISOLATION LEVEL ${isolationLevel}`, readOnly && 'READ ONLY'];
    const tail = modes.filter(Boolean).join(', ');
    const start = tail ? `START TRANSACTION ${tail}` : 'START TRANSACTION';
    // One query of two statements (the simple query protocol allows it): one round trip.
    return [timeout ? `${start}; SET LOCAL statement_timeout = ${Math.ceil(timeout)}` : start];
  }
  const start = readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION';
  return isolationLevel ? [`SET TRANSACTION ISOLATION LEVEL ${isolationLevel}`, start] : [start];
}

/** The size of the data source's pool, when the driver tells it (SQLite: its one connection). */
export function poolSize(dataSource: DataSource): number | undefined {
  if (SQLITE.has(dataSource.options.type)) return 1;
  const driver = dataSource.driver as unknown as {
    master?: { options?: { max?: number } };
    pool?: { config?: { connectionLimit?: number } };
  };
  const size =
    driver.master?.options?.max ??
    driver.pool?.config?.connectionLimit ??
    (dataSource.options as { poolSize?: number }).poolSize;
  return typeof size === 'number' ? size : undefined;
}

/** The pool internals `poolHasRoom` reads (pg-pool, mysql2); anything else counts as full. */
interface PoolCounters {
  master?: { idleCount?: number; waitingCount?: number };
  pool?: {
    _freeConnections?: { length: number };
    _allConnections?: { length: number };
    config?: { connectionLimit?: number };
  };
}

/**
 * Whether the connection just asked of the pool comes without waiting for another to return.
 * Called right after the ask (both pools take their decision at the ask, in the same tick):
 * mysql2 has then already taken a free connection or opened a new one, or queued the ask. pg-pool
 * queues an ask even when a client is idle, and hands idle clients to the queue only on its next
 * tick, so its idle count alone cannot tell: the ask is served at once only while the queue holds
 * no more asks than there are idle clients (asks made in the same tick share them).
 */
export function poolHasRoom(dataSource: DataSource): boolean {
  const { master, pool } = dataSource.driver as unknown as PoolCounters;
  if (master?.idleCount !== undefined && master.waitingCount !== undefined) {
    return pgServesAtOnce(master as { idleCount: number; waitingCount: number });
  }
  // SQLite: the ask was served at once unless it queued behind the turn held.
  const writer = writerOf(dataSource);
  if (writer !== undefined) return writer.queued === 0;
  const free = pool?._freeConnections?.length;
  const all = pool?._allConnections?.length;
  if (free === undefined || all === undefined) return false;
  return free > 0 || all < (pool?.config?.connectionLimit ?? 10);
}

/**
 * Whether a pg pool serves the ask just made of it without waiting for a client to return: it
 * opened a new client (nothing queued), or the queued asks do not outnumber its idle clients.
 */
export function pgServesAtOnce(pool: { idleCount: number; waitingCount: number }): boolean {
  return pool.waitingCount <= pool.idleCount;
}

/** The SQLSTATE or MySQL error number of a driver error, wrapped by TypeORM or not. */
function errorCode(error: unknown): string | number | undefined {
  const { driverError, code, errno } = (error ?? {}) as {
    driverError?: unknown;
    code?: unknown;
    errno?: unknown;
  };
  if (driverError !== undefined && driverError !== error) return errorCode(driverError);
  if (typeof errno === 'number') return errno;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Whether a failed statement leaves the server refusing to commit the transaction (or the
 * savepoint it ran in). PostgreSQL aborts it on every error the server raised: its `COMMIT` then
 * answers `ROLLBACK`. MySQL/MariaDB undo just the statement, except on a deadlock.
 */
export function abortsTransaction(type: string, error: unknown): boolean {
  const code = errorCode(error);
  if (SQLITE.has(type)) return rolledBackBySqlite(code);
  if (POSTGRES.has(type)) return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
  return code === MYSQL_DEADLOCK;
}

/**
 * Whether the server already rolled the whole transaction back (savepoints included) and goes on
 * in autocommit mode: MySQL/MariaDB after a deadlock. Later statements must not be sent, or each
 * would commit on its own.
 */
export function rolledBackByServer(type: string, error: unknown): boolean {
  if (SQLITE.has(type)) return rolledBackBySqlite(errorCode(error));
  return MYSQL.has(type) && errorCode(error) === MYSQL_DEADLOCK;
}

/**
 * SQLite undoes just the failed statement, except on the errors after which it may roll the whole
 * transaction back itself (disk full, I/O error, out of memory, busy, interrupted): whether it did
 * cannot be told from the error, so the transaction counts as gone.
 */
function rolledBackBySqlite(code: string | number | undefined): boolean {
  return typeof code === 'string' && /^SQLITE_(FULL|IOERR|NOMEM|BUSY|INTERRUPT)/.test(code);
}

/** Node socket errors and driver messages of a connection that is gone. */
const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'ECONNABORTED']);
const GONE_MESSAGES = /Connection terminated|not queryable|Client was closed|connection is closed/i;
/** MySQL/MariaDB: server gone away, lost connection, connection killed, server shutdown. */
const MYSQL_GONE = new Set([2006, 2013, 1927, 1053]);
const MYSQL_GONE_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
]);

/**
 * Whether `error` says the connection itself is gone (the server terminated the backend, a
 * failover, a network failure) rather than that a statement failed on a working connection.
 */
export function isConnectionLost(type: string, error: unknown): boolean {
  const code = errorCode(error);
  const { message, driverError } = (error ?? {}) as { message?: unknown; driverError?: unknown };
  const nodeCode = (driverError ?? error) as { code?: unknown; fatal?: unknown };
  if (typeof nodeCode.code === 'string' && SOCKET_CODES.has(nodeCode.code)) return true;
  if (POSTGRES.has(type)) {
    if (typeof code === 'string' && (/^57P0[123]$/.test(code) || code.startsWith('08')))
      return true;
    return typeof message === 'string' && GONE_MESSAGES.test(message);
  }
  if (typeof code === 'number' && MYSQL_GONE.has(code)) return true;
  // mysql2, once the socket closed: "Can't add new command when connection is in closed state".
  if (typeof message === 'string' && /connection is in closed state/.test(message)) return true;
  return typeof nodeCode.code === 'string' && MYSQL_GONE_CODES.has(nodeCode.code);
}

/** MySQL/MariaDB's server status flag of a session inside a transaction. */
const SERVER_STATUS_IN_TRANS = 1;

/**
 * Whether a MySQL/MariaDB statement's OK packet (mysql2's `ResultSetHeader`, alone or as a
 * TypeORM `QueryResult`'s `raw`) says that no transaction is open any more: the statement (DDL,
 * `TRUNCATE`, `LOCK TABLES`...) committed it implicitly, and the server goes on in autocommit mode.
 */
export function endedTransaction(type: string, result: unknown): boolean {
  if (!MYSQL.has(type)) return false;
  const status = serverStatus(result) ?? serverStatus((result as { raw?: unknown } | null)?.raw);
  return status !== undefined && (status & SERVER_STATUS_IN_TRANS) === 0;
}

/** The `serverStatus` of an OK packet, when `value` is one. */
function serverStatus(value: unknown): number | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const status = (value as { serverStatus?: unknown }).serverStatus;
  return typeof status === 'number' ? status : undefined;
}

/** MySQL/MariaDB `ER_LOCK_DEADLOCK`. */
const MYSQL_DEADLOCK = 1213;
