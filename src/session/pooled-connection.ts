import type { DataSource } from 'typeorm';
import { contextStorage } from '../context/context-storage.js';
import { writerOf } from './sqlite-writer.js';
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

/** The statements that begin and end a transaction on a held connection. */
export interface TransactionStatements {
  begin: readonly string[];
  commit: string;
  rollback: string;
  /** The prefix of its savepoints' names. */
  savepoint: string;
}

/** A connection a session holds for one transaction: a pooled one, or a test's shared one. */
export interface HeldConnection {
  readonly raw: DriverConnection;
  /** The error the driver reported, if the connection broke before it was used. */
  readonly failure?: Error;
  /** Receives the driver's errors while the connection is held. */
  onError?: (error: Error) => void;
  /** How transactions begin and end on it; none: the session's own BEGIN, COMMIT, ROLLBACK. */
  readonly statements?: TransactionStatements;
  /** Gives it back. */
  release(): void;
  /** Gives it back when its state is unknown (a pooled connection is dropped). */
  destroy(error: Error): Promise<void>;
  /** Sends a statement; a shared connection serializes the statements of all its holders. */
  send?<T>(call: () => Promise<T>): Promise<T>;
  /** Sends at once a statement that is part of one `send` runs (a subscriber's, from its events). */
  inline?<T>(call: () => Promise<T>): Promise<T>;
}

/** A connection taken for one holder: from a pool, or a SQLite data source's turn (`WriterTurn`). */
export interface TakenConnection extends HeldConnection {
  /** The error the driver reported, if the connection broke. */
  failure?: Error;
}

/** Who lends a session a connection instead of its data source's pool (the testing kit). */
export interface ConnectionLender {
  /** A connection for the transaction `session` begins, in the frame `frame` (it may wait). */
  lend(session: unknown, frame: unknown): Promise<HeldConnection>;
}

/**
 * A connection taken from the data source's pool, guarded from the instant the pool hands it
 * out: its `'error'` listener is attached inside the pool's own callback, so an error the driver
 * emits in the same tick (a backend killed right as it became ready) reaches it instead of
 * crashing the process. Whoever holds it sets `onError`; until then the error is kept.
 */
export class PooledConnection implements TakenConnection {
  /** The error the driver reported, if the connection broke. */
  failure?: Error;
  /** Receives the driver's errors while the connection is held. */
  onError?: (error: Error) => void;
  private readonly guard = (error: Error): void => {
    this.failure ??= error;
    this.onError?.(error);
  };

  constructor(
    readonly raw: DriverConnection,
    /** Gives it back; with an error, the pool drops it (pg-pool's `release(error)`). */
    private readonly giveBack: (error?: Error) => void,
    /** How to drop it when `giveBack(error)` is not the way (mysql2). */
    private readonly drop?: (error: Error) => Promise<void>,
  ) {
    raw.on('error', this.guard);
  }

  /**
   * Gives it back to the pool, healthy, outside the caller's context: pg-pool starts the
   * connection's idle timer there, which would keep the whole unit (its request, session and
   * runner) reachable until the connection is taken again.
   */
  release(): void {
    this.raw.removeListener('error', this.guard);
    contextStorage.exit(this.giveBack);
  }

  /**
   * Makes the pool drop it (its state is unknown); the server rolls back what was open. Outside
   * the caller's context too: the pool may open the connection that replaces it for an ask
   * waiting in the queue right then (mysql2), and that socket would keep the unit.
   */
  destroy(error: Error): Promise<void> {
    // Keep listening: a connection on its way down may still report errors.
    return contextStorage.exit(() => {
      if (this.drop) return this.drop(error);
      try {
        this.giveBack(error);
      } catch (failure) {
        return Promise.reject(failure as Error);
      }
      return Promise.resolve();
    });
  }
}

/** The parts of TypeORM's PostgreSQL and MySQL drivers used to take pooled connections. */
interface PoolDriver {
  /** pg-pool of the primary (PostgreSQL). */
  master?: PgPool;
  obtainMasterConnection(): Promise<unknown>;
  mysql?: { Connection: SideConnectionClass };
}

/** pg-pool, as far as sessions take connections from it. */
export interface PgPool {
  connect(
    callback: (
      error: Error | undefined,
      client: DriverConnection,
      release: (error?: Error) => void,
    ) => void,
  ): void;
}

/**
 * Takes a connection from the data source's primary pool, guarded (see `PooledConnection`); on
 * SQLite, the turn on its one connection.
 */
export function takeConnection(dataSource: DataSource): Promise<TakenConnection> {
  const driver = dataSource.driver as unknown as PoolDriver;
  if (isPostgres(dataSource.options.type) && driver.master) return connectPg(driver.master);
  const writer = writerOf(dataSource);
  if (writer !== undefined) return writer.take();
  // mysql2: TypeORM's own callback attaches a listener for the connection's whole life.
  return contextStorage
    .exit(() => driver.obtainMasterConnection())
    .then((connection) => {
      const raw = connection as DriverConnection;
      return new PooledConnection(
        raw,
        () => raw.release?.(),
        async () => {
          raw.destroy?.();
          await killOnServer(driver, raw);
        },
      );
    });
}

/**
 * Takes a connection from a pg pool (the primary's or a replica's), guarded. Asked outside the
 * caller's context (see `outsideContext`).
 */
export function connectPg(pool: PgPool): Promise<PooledConnection> {
  return new Promise((resolve, reject) => {
    const ask = new PgAsk(resolve, reject);
    contextStorage.exit(outsideContext, pool, (error, client, release) =>
      ask.answer(error, client, release),
    );
  });
}

/**
 * One ask of a pg pool, forgotten once answered: pg keeps the callback of the ask that opened a
 * connection for as long as the connection lives, and it must not keep the asker's promise (and
 * through it the unit awaiting it) with it.
 */
class PgAsk {
  constructor(
    private resolve?: (connection: PooledConnection) => void,
    private reject?: (error: Error) => void,
  ) {}

  /** Settles the ask with the pool's answer, once, and lets go of the asker. */
  answer(error: Error | undefined, client: DriverConnection, release: (error?: Error) => void) {
    const { resolve, reject } = this;
    this.resolve = this.reject = undefined;
    if (error) reject?.(error);
    else resolve?.(new PooledConnection(client, release));
  }
}

/**
 * Asks `pool` for a connection with no unit current: a connection the pool opens for the ask
 * keeps the context its socket was made in for its whole life, and would keep the unit that
 * happened to ask first (its request, session and runner) reachable as long as the connection
 * lives, and run the socket's later events (an error on an idle connection) in it.
 */
function outsideContext(pool: PgPool, callback: Parameters<PgPool['connect']>[0]): void {
  pool.connect(callback);
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
