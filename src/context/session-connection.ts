import type { DataSource, QueryRunner } from 'typeorm';
import { connectWithin } from './connection-wait.js';
import { StatementQueue } from './statement-queue.js';
import {
  type BeginOptions,
  beginStatements,
  discardConnection,
  holdsConnection,
  isPostgres,
  poolHasRoom,
} from './transaction-dialect.js';

/** Arguments of `QueryRunner.query()`. */
export type QueryArgs = Parameters<QueryRunner['query']>;

/** The runner methods a session replaces, as TypeORM made them. */
export type OriginalMethods = Pick<
  QueryRunner,
  'query' | 'stream' | 'startTransaction' | 'commitTransaction' | 'rollbackTransaction' | 'release'
>;

/** QueryRunner members TypeORM keeps protected or read-only that the session drives. */
type RunnerInternals = Omit<QueryRunner, 'isTransactionActive'> & {
  isTransactionActive: boolean;
  transactionDepth: number;
};

/**
 * One session's QueryRunner at the wire level: the runner's original methods, its statement
 * queue, BEGIN / COMMIT / ROLLBACK with TypeORM's transaction events, taking a pooled connection
 * within a timeout, releasing and discarding it. `LazySession` decides when; this does it.
 */
export class SessionConnection {
  /** The runner, whose methods the session replaces. */
  readonly runner: RunnerInternals & QueryRunner;
  /** The runner's methods before the session replaced them. */
  readonly original: OriginalMethods;
  /** True while a connection is on its way from the pool. */
  acquiring = false;
  /** PostgreSQL only: mysql2 queues a connection's commands itself. */
  private readonly queue?: StatementQueue;

  constructor(private readonly dataSource: DataSource) {
    const runner = dataSource.createQueryRunner('master') as unknown as RunnerInternals;
    this.runner = runner as RunnerInternals & QueryRunner;
    const { query, stream, startTransaction, commitTransaction, rollbackTransaction, release } =
      runner;
    this.original = {
      query,
      stream,
      startTransaction,
      commitTransaction,
      rollbackTransaction,
      release,
    };
    if (isPostgres(dataSource.options.type)) this.queue = new StatementQueue();
  }

  /** Whether a pooled connection is held right now. */
  get held(): boolean {
    return holdsConnection(this.runner);
  }

  /** A user's query, after the statements already in flight. */
  query(args: QueryArgs): Promise<unknown> {
    const send = () => this.original.query.apply(this.runner, args) as Promise<unknown>;
    return this.queue ? this.queue.run(send) : send();
  }

  /**
   * A statement of the session itself (BEGIN, COMMIT, ROLLBACK). User queries wait for the
   * session's state meanwhile, so it only has to wait for statements already in flight.
   */
  exec(sql: string): Promise<unknown> {
    const send = () => this.original.query.call(this.runner, sql) as Promise<unknown>;
    return this.queue?.busy ? this.queue.run(send) : send();
  }

  /**
   * Takes a pooled connection: at once when the pool has room, else waiting at most `ms`.
   * Resolves `false` on timeout; a connection that arrives later goes back to the pool.
   */
  async connect(ms: number): Promise<boolean> {
    if (this.held) return true;
    this.acquiring = true;
    try {
      if (!poolHasRoom(this.dataSource)) return await connectWithin(this.runner, ms, this.release);
      await this.runner.connect();
      return true;
    } finally {
      this.acquiring = false;
    }
  }

  /** Sends the statements that begin a transaction, between TypeORM's start events. */
  async begin(options: BeginOptions): Promise<void> {
    const broadcaster = this.broadcaster();
    if (broadcaster) await broadcaster.broadcast('BeforeTransactionStart');
    for (const sql of beginStatements(this.dataSource.options.type, options)) await this.exec(sql);
    this.runner.transactionDepth = 1;
    if (broadcaster) await broadcaster.broadcast('AfterTransactionStart');
  }

  /** COMMIT or ROLLBACK straight on the connection (the runner's own methods would re-enter `query`). */
  async finish(statement: 'commit' | 'rollback'): Promise<void> {
    const commit = statement === 'commit';
    const broadcaster = this.broadcaster();
    if (broadcaster)
      await broadcaster.broadcast(commit ? 'BeforeTransactionCommit' : 'BeforeTransactionRollback');
    await this.exec(commit ? 'COMMIT' : 'ROLLBACK');
    this.runner.transactionDepth = 0;
    if (broadcaster)
      await broadcaster.broadcast(commit ? 'AfterTransactionCommit' : 'AfterTransactionRollback');
  }

  /** A bare ROLLBACK after a transaction failed half-way (no events); false if the connection broke. */
  rollbackQuietly(): Promise<boolean> {
    this.runner.transactionDepth = 0;
    return this.exec('ROLLBACK').then(
      () => true,
      () => false,
    );
  }

  /** Marks the runner as outside any transaction that still reports an active one. */
  reset(): void {
    this.runner.transactionDepth = 0;
    this.runner.isTransactionActive = true;
  }

  /** Gives the connection back to the pool. */
  readonly release = (): Promise<void> => this.original.release.call(this.runner);

  /** Makes the pool destroy the connection (its state is unknown). */
  discard(error: unknown): Promise<void> {
    return discardConnection(this.runner, error);
  }

  /** TypeORM's broadcaster, when any subscriber listens (otherwise the events are skipped). */
  private broadcaster() {
    return this.dataSource.subscribers.length > 0 ? this.runner.broadcaster : undefined;
  }
}
