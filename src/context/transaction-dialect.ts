import type { DataSource, QueryRunner } from 'typeorm';
import { messages } from '../errors/messages.js';
import { UnsupportedDriverError } from '../errors/unsupported-driver.error.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';

/** How a transaction begins: isolation level and access mode. */
export interface BeginOptions {
  isolationLevel?: IsolationLevel;
  readOnly?: boolean;
  /** Milliseconds after which PostgreSQL cancels a statement of this transaction. */
  timeout?: number;
}

const POSTGRES = new Set(['postgres', 'cockroachdb', 'aurora-postgres']);
const MYSQL = new Set(['mysql', 'mariadb', 'aurora-mysql']);

/** Whether `type` is a PostgreSQL-family driver. */
export function isPostgres(type: string): boolean {
  return POSTGRES.has(type);
}

/** Throws at startup for drivers whose transactions the library cannot drive. */
export function assertSupportedDriver(type: string): void {
  if (!POSTGRES.has(type) && !MYSQL.has(type)) {
    throw new UnsupportedDriverError(messages.unsupportedDriver(type));
  }
}

/** The statements that begin a transaction on `type`, in order (one round trip on PostgreSQL). */
export function beginStatements(type: string, options: BeginOptions): string[] {
  const { isolationLevel, readOnly, timeout } = options;
  if (POSTGRES.has(type)) {
    const modes = [isolationLevel && `ISOLATION LEVEL ${isolationLevel}`, readOnly && 'READ ONLY'];
    const tail = modes.filter(Boolean).join(', ');
    const start = tail ? `START TRANSACTION ${tail}` : 'START TRANSACTION';
    return timeout ? [start, `SET LOCAL statement_timeout = ${Math.ceil(timeout)}`] : [start];
  }
  const start = readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION';
  return isolationLevel ? [`SET TRANSACTION ISOLATION LEVEL ${isolationLevel}`, start] : [start];
}

/** The connection a mysql2 runner holds: enough to open a side connection to the same server. */
interface MysqlConnection {
  threadId?: number;
  config?: unknown;
  destroy?: () => void;
}

/** Runner members of both drivers that the pool helpers read. */
interface RunnerConnection {
  releasePostgresConnection?: (err: unknown) => Promise<void>;
  databaseConnection?: MysqlConnection;
  isReleased: boolean;
}

/** Whether `runner` holds a pooled connection right now. */
export function holdsConnection(runner: QueryRunner): boolean {
  const internals = runner as unknown as RunnerConnection;
  return internals.databaseConnection !== undefined && !internals.isReleased;
}

/** The size of the data source's pool, when the driver tells it. */
export function poolSize(dataSource: DataSource): number | undefined {
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
  master?: { idleCount?: number; totalCount?: number; options?: { max?: number } };
  pool?: {
    _freeConnections?: { length: number };
    _allConnections?: { length: number };
    config?: { connectionLimit?: number };
  };
}

/** Whether the pool can hand out a connection without making anyone wait for another to return. */
export function poolHasRoom(dataSource: DataSource): boolean {
  const { master, pool } = dataSource.driver as unknown as PoolCounters;
  if (master?.idleCount !== undefined && master.totalCount !== undefined) {
    return master.idleCount > 0 || master.totalCount < (master.options?.max ?? 10);
  }
  const free = pool?._freeConnections?.length;
  const all = pool?._allConnections?.length;
  if (free === undefined || all === undefined) return false;
  return free > 0 || all < (pool?.config?.connectionLimit ?? 10);
}

/**
 * Hands a connection whose state is unknown back so that the pool destroys it. On MySQL/MariaDB
 * the server also gets a KILL from a side connection: closing the socket alone does not stop a
 * running statement there, which would hold its locks and its transaction until it finished.
 */
export async function discardConnection(runner: QueryRunner, error: unknown): Promise<void> {
  const internals = runner as unknown as RunnerConnection;
  if (internals.releasePostgresConnection) {
    await internals.releasePostgresConnection.call(
      runner,
      error instanceof Error ? error : new Error(String(error)),
    );
    return;
  }
  const connection = internals.databaseConnection;
  connection?.destroy?.();
  internals.isReleased = true;
  if (connection) await killOnServer(runner, connection);
}

/** Sends `KILL <thread>` for `connection` on a short-lived connection of its own (best effort). */
async function killOnServer(runner: QueryRunner, connection: MysqlConnection): Promise<void> {
  const mysql = (runner.connection.driver as unknown as { mysql?: MysqlModule }).mysql;
  if (connection.threadId === undefined || !connection.config || !mysql?.Connection) return;
  const side = new mysql.Connection({ config: connection.config });
  side.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    side.query(`KILL ${Number(connection.threadId)}`, () => resolve());
  });
  side.destroy();
}

/** The part of the mysql2 module `killOnServer` uses. */
interface MysqlModule {
  Connection: new (options: { config: unknown }) => {
    on(event: 'error', listener: () => void): void;
    query(sql: string, callback: () => void): void;
    destroy(): void;
  };
}
