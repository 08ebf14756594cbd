import type { DataSource } from 'typeorm';
import { isPostgres } from './transaction-dialect.js';

/** A driver connection: a pg `Client` or a mysql2 `PoolConnection`. */
export interface DriverConnection {
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  /** mysql2: the server's thread id, for KILL. */
  threadId?: number;
  /** mysql2: the options a side connection for KILL is opened with. */
  config?: unknown;
  release?: () => void;
  destroy?: () => void;
}

/** A connection taken from the data source's pool, and the way to give it back. */
export interface PooledConnection {
  readonly raw: DriverConnection;
  /** Gives it back to the pool, healthy. */
  release(): void;
  /** Makes the pool drop it (its state is unknown); the server rolls back what was open. */
  destroy(error: Error): Promise<void>;
}

/** The parts of TypeORM's PostgreSQL and MySQL drivers used to take pooled connections. */
interface PoolDriver {
  obtainMasterConnection(): Promise<unknown>;
  mysql?: { Connection: SideConnectionClass };
}

/** Takes a connection from the data source's primary pool (what TypeORM's runners do). */
export async function takeConnection(dataSource: DataSource): Promise<PooledConnection> {
  const driver = dataSource.driver as unknown as PoolDriver;
  if (isPostgres(dataSource.options.type)) {
    const [raw, release] = (await driver.obtainMasterConnection()) as [
      DriverConnection,
      (error?: Error) => void,
    ];
    return {
      raw,
      release: () => release(),
      destroy: async (error) => release(error),
    };
  }
  const raw = (await driver.obtainMasterConnection()) as DriverConnection;
  return {
    raw,
    release: () => raw.release?.(),
    destroy: async () => {
      raw.destroy?.();
      await killOnServer(driver, raw);
    },
  };
}

/** A mysql2 connection class, enough to open a short-lived side connection. */
type SideConnectionClass = new (options: { config: unknown }) => {
  on(event: 'error', listener: () => void): void;
  query(sql: string, callback: () => void): void;
  destroy(): void;
};

/**
 * Sends `KILL <thread>` from a short-lived side connection (best effort): on MySQL/MariaDB a
 * closed socket does not stop a running statement, which would keep its locks and transaction.
 */
async function killOnServer(driver: PoolDriver, connection: DriverConnection): Promise<void> {
  const Connection = driver.mysql?.Connection;
  if (connection.threadId === undefined || !connection.config || !Connection) return;
  const side = new Connection({ config: connection.config });
  side.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    side.query(`KILL ${Number(connection.threadId)}`, () => resolve());
  });
  side.destroy();
}
