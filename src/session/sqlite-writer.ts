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

  /** Whether no turn is held (a take now is served at once). */
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

  /** Reads `query_only` on the database it was prepared on. */
  private readOnlyNow?: { database: SqliteDatabase; read(): boolean };

  /**
   * Makes the connection writable again if a read-only transaction (or a user's pragma) made it
   * read-only. Read first, through one prepared statement: setting the pragma makes SQLite expire
   * every prepared statement of the connection (each would be compiled again on its next use).
   */
  writable(database: SqliteDatabase): void {
    if (this.readOnlyNow?.database !== database) {
      this.readOnlyNow = { database, read: readQueryOnly(database) };
    }
    if (this.readOnlyNow.read()) send(database, 'PRAGMA query_only = OFF');
  }

  /** The statement cache the runners share, per database (TypeORM's better-sqlite3 runners keep one). */
  private statements?: { database: SqliteDatabase; cache: Map<string, unknown> };

  /**
   * A runner of the driver's class, sharing one statement cache with the others made here: a
   * cache per runner (a runner per session) would prepare each statement again per session, and
   * keep thousands alive until collected, which every pragma and schema change then walks.
   */
  runner(): QueryRunner {
    const runner = new this.Runner(this.driver) as QueryRunner & {
      stmtCache?: Map<string, unknown>;
    };
    if (runner.stmtCache instanceof Map) {
      const database = this.driver.databaseConnection;
      if (this.statements?.database !== database) this.statements = { database, cache: new Map() };
      runner.stmtCache = this.statements.cache;
    }
    return runner;
  }

  /** A query runner of the driver's own class that does not take turns (a session's). */
  ownRunner(dataSource: DataSource): QueryRunner {
    const runner = this.runner();
    return Object.assign(runner, { manager: dataSource.createEntityManager(runner) });
  }
}

/** Reads whether `query_only` is on, through a statement prepared once. */
function readQueryOnly(database: SqliteDatabase): () => boolean {
  const statement = database.prepare!('PRAGMA query_only') as unknown as {
    get(): unknown;
    step?(): boolean;
    reset?(): void;
  };
  if (statement.step === undefined) {
    // better-sqlite3: `get()` returns the row.
    return () => Object.values(statement.get() as Record<string, number>)[0] === 1;
  }
  // sql.js: step, read the row's values, reset for the next read.
  return () => {
    statement.step!();
    const [value] = statement.get() as number[];
    statement.reset!();
    return value === 1;
  };
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
  guard: (runner: QueryRunner) => QueryRunner,
): SqliteWriter {
  const driver = dataSource.driver as unknown as SqliteDriver;
  let writer = WRITERS.get(driver);
  if (writer === undefined) {
    const Runner = driver.createQueryRunner('master').constructor as RunnerClass;
    writer = new SqliteWriter(driver, Runner);
    WRITERS.set(driver, writer);
  }
  const made = writer;
  driver.createQueryRunner = () => guard(made.runner());
  return writer;
}
