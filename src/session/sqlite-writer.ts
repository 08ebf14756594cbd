import type { DataSource, QueryRunner, ReplicationMode } from 'typeorm';
import type { DriverConnection, TakenConnection } from './pooled-connection.js';

/**
 * A SQLite database as TypeORM opens it: one connection per data source (better-sqlite3's
 * `Database`, sql.js's `Database`), shared by every query runner the driver makes.
 */
interface SqliteDatabase {
  /** better-sqlite3: whether a transaction is open. */
  inTransaction?: boolean;
  /** Prepares a statement (both drivers). */
  prepare?(sql: string): { run(): unknown };
  /** sql.js: runs a statement. */
  run?(sql: string): unknown;
  /** better-sqlite3: runs statements. */
  exec?(sql: string): unknown;
}

/** The parts of TypeORM's SQLite drivers the writer replaces and uses. */
interface SqliteDriver {
  databaseConnection: SqliteDatabase;
  createQueryRunner(mode: ReplicationMode): QueryRunner;
}

/** A query runner class of TypeORM's SQLite drivers. */
type RunnerClass = new (driver: SqliteDriver) => QueryRunner;

/**
 * The one connection of a SQLite data source, handed out in turns, first come first served. Every
 * TypeORM SQLite driver shares one connection among all its query runners, so two transactions at
 * once would interleave on it ("cannot start a transaction within a transaction"). A session takes
 * the turn for its transaction as it takes a pooled connection elsewhere (within
 * `acquireTimeout`); plain TypeORM code takes it per query runner (see `installSqliteWriter()`).
 */
export class SqliteWriter {
  /** The turns waiting, in order of arrival. */
  private readonly waiting: Array<(turn: WriterTurn) => void> = [];
  private holder?: WriterTurn;

  constructor(
    private readonly driver: SqliteDriver,
    /** The runner class of the driver (each runner made of it runs on the one connection). */
    readonly Runner: RunnerClass,
  ) {}

  /** Whether no turn is held and none waits (a take now is served at once). */
  get idle(): boolean {
    return this.holder === undefined;
  }

  /** The turns waiting behind the one held. */
  get queued(): number {
    return this.waiting.length;
  }

  /** The connection, once every turn asked before this one was given back. */
  take(): Promise<WriterTurn> {
    if (this.holder === undefined) {
      this.holder = new WriterTurn(this, this.driver.databaseConnection);
      return Promise.resolve(this.holder);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** `turn` is given back: the next waiting turn gets the connection. */
  handOver(turn: WriterTurn): void {
    if (this.holder !== turn) return;
    const next = this.waiting.shift();
    if (next === undefined) {
      this.holder = undefined;
      return;
    }
    this.holder = new WriterTurn(this, this.driver.databaseConnection);
    next(this.holder);
  }

  private reset?: { database: SqliteDatabase; run(): void };

  /** Makes the connection writable again (`PRAGMA query_only = OFF`, prepared once). */
  writable(database: SqliteDatabase): void {
    if (this.reset?.database !== database) {
      const statement = database.prepare?.('PRAGMA query_only = OFF');
      this.reset = {
        database,
        run: statement
          ? () => void statement.run()
          : () => send(database, 'PRAGMA query_only = OFF'),
      };
    }
    this.reset.run();
  }

  /** A query runner of the driver's own class that does not take turns (a session's). */
  ownRunner(dataSource: DataSource): QueryRunner {
    const runner = new this.Runner(this.driver);
    return Object.assign(runner, { manager: dataSource.createEntityManager(runner) });
  }
}

/**
 * One turn on a SQLite data source's connection: held by one session's transaction (or one plain
 * query runner) until given back. Giving it back leaves the connection as the next turn expects
 * it: no transaction open, writable.
 */
export class WriterTurn implements TakenConnection {
  failure?: Error;
  onError?: (error: Error) => void;
  private done = false;

  constructor(
    private readonly writer: SqliteWriter,
    private readonly database: SqliteDatabase,
  ) {}

  /** The SQLite database (it has no socket and no `'error'` events). */
  get raw(): DriverConnection {
    return this.database as unknown as DriverConnection;
  }

  /**
   * Gives the connection to the next turn as it expects it: no transaction open (one a plain
   * runner or a user's `BEGIN` left behind is rolled back; better-sqlite3 tells whether one is,
   * sql.js does not, so there a `ROLLBACK` is always tried), and writable again (a read-only
   * transaction set `query_only`).
   */
  release(): void {
    if (this.done) return;
    this.done = true;
    if (this.database.inTransaction !== false) {
      try {
        send(this.database, 'ROLLBACK');
      } catch {
        // No transaction was open, or the database was closed (the data source destroyed).
      }
    }
    try {
      this.writer.writable(this.database);
    } catch {
      // The database was closed: nothing to reset.
    }
    this.writer.handOver(this);
  }

  /** Its state is unknown: `release()` rolls back whatever is still open. */
  destroy(): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

/** Runs one statement on the SQLite database directly (better-sqlite3 or sql.js). */
function send(database: SqliteDatabase, sql: string): void {
  // sql.js's `run()` frees its statement (one left prepared would stay in its heap); better-sqlite3's `exec()`.
  (database.run ?? database.exec)!.call(database, sql);
}

const WRITERS = new WeakMap<object, SqliteWriter>();

/** The writer of a SQLite data source, once `installSqliteWriter()` made it. */
export function writerOf(dataSource: DataSource): SqliteWriter | undefined {
  return WRITERS.get(dataSource.driver);
}

/**
 * Puts a SQLite data source's connection behind a `SqliteWriter` (one per data source, made by the
 * first app that starts on it): its driver no longer hands every caller the same query runner, but
 * a new one per call, made by `guard` so that it takes the writer's turn on its first statement and
 * gives it back on `release()`, as a pooled runner takes and gives back a connection elsewhere.
 * Plain TypeORM code (`dataSource.manager`, repositories, `dataSource.transaction()`, query
 * builders) then queues with the sessions instead of running inside whichever transaction is open.
 * An app that starts later on the same data source installs its own `guard` (its acquireTimeout).
 */
export function installSqliteWriter(
  dataSource: DataSource,
  guard: (runner: QueryRunner, writer: SqliteWriter) => QueryRunner,
): SqliteWriter {
  const driver = dataSource.driver as unknown as SqliteDriver;
  let writer = WRITERS.get(driver);
  if (writer === undefined) {
    const Runner = driver.createQueryRunner('master').constructor as RunnerClass;
    writer = new SqliteWriter(driver, Runner);
    WRITERS.set(driver, writer);
  }
  const made = writer;
  driver.createQueryRunner = () => guard(new made.Runner(driver), made);
  return writer;
}
