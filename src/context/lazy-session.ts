import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { messages } from '../errors/messages.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { SessionClosedError } from '../errors/session-closed.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import { DEFAULT_ACQUIRE_TIMEOUT } from '../typeorm-context.options.js';
import { ContextFrame } from './context-frame.js';
import { contextStorage } from './context-storage.js';
import { CommitCallbacks } from './commit-callbacks.js';
import { connectWithin } from './connection-wait.js';
import type { CloseReason, SessionHooks } from './session-hooks.js';
import { StatementQueue } from './statement-queue.js';
import {
  type BeginOptions,
  beginStatements,
  discardConnection,
  holdsConnection,
  isPostgres,
  poolHasRoom,
  poolSize,
} from './transaction-dialect.js';

type State = 'idle' | 'starting' | 'active' | 'ending' | 'closed';
type Original = Pick<
  QueryRunner,
  'query' | 'stream' | 'startTransaction' | 'commitTransaction' | 'rollbackTransaction' | 'release'
>;

type QueryArgs = Parameters<QueryRunner['query']>;

/** QueryRunner members TypeORM keeps protected or read-only that the session drives. */
type RunnerInternals = Omit<QueryRunner, 'isTransactionActive'> & {
  isTransactionActive: boolean;
  transactionDepth: number;
};

const RESOLVED = Promise.resolve();

/**
 * One session: an `EntityManager` on its own QueryRunner that takes no connection and sends no
 * BEGIN until its first query. The runner always reports an active transaction, so TypeORM's
 * `save()` and friends join it instead of committing on their own; `manager.transaction()` on it
 * becomes a SAVEPOINT. Only this instance's runner is changed, never a TypeORM prototype.
 */
export class LazySession {
  /** The `EntityManager` users query through. */
  readonly manager: EntityManager;
  /** Set when an error escaped a block that joined this transaction: commit must refuse it. */
  rollbackOnly = false;
  private state: State = 'idle';
  private transition?: Promise<void>;
  private closeReason: CloseReason = 'closed';
  private abortError?: Error;
  private readonly callbacks = new CommitCallbacks();
  /** True while the first query waits for a pooled connection. */
  private acquiring = false;
  private readonly dataSource: DataSource;
  private readonly runner: RunnerInternals & QueryRunner;
  private readonly original: Original;
  private readonly driverType: string;
  /** PostgreSQL only: mysql2 queues a connection's commands itself. */
  private readonly queue?: StatementQueue;

  constructor(
    /** Name of the data source this session belongs to. */
    readonly dataSourceName: string,
    dataSource: DataSource,
    private readonly hooks: SessionHooks,
    private readonly begin: BeginOptions = {},
  ) {
    const runner = dataSource.createQueryRunner('master') as unknown as RunnerInternals;
    this.runner = runner as RunnerInternals & QueryRunner;
    this.manager = runner.manager;
    this.dataSource = dataSource;
    this.driverType = dataSource.options.type;
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
    const queue = isPostgres(this.driverType) ? new StatementQueue() : undefined;
    this.queue = queue;
    const run = queue
      ? (args: QueryArgs) => queue.run(() => query.apply(runner, args))
      : (args: QueryArgs) => query.apply(runner, args);

    runner.isTransactionActive = true;
    runner.query = ((...args: QueryArgs) =>
      this.state === 'active'
        ? run(args)
        : (this.state === 'idle' ? this.start() : this.ready()).then(() =>
            this.state === 'active' ? run(args) : this.ready().then(() => run(args)),
          )) as QueryRunner['query'];
    runner.stream = (...args) => this.ready().then(() => stream.apply(runner, args));
    runner.startTransaction = (isolationLevel) =>
      this.ready().then(async () => {
        await startTransaction.call(runner, isolationLevel);
        this.callbacks.mark();
      });
    runner.commitTransaction = () => {
      if (runner.transactionDepth <= 1) return this.commit();
      this.callbacks.unmark(true);
      return commitTransaction.call(runner);
    };
    runner.rollbackTransaction = () => {
      if (runner.transactionDepth <= 1) return this.rollback();
      this.callbacks.unmark(false);
      return rollbackTransaction.call(runner);
    };
    runner.release = () => this.close('closed');
  }

  /** Whether the session holds a pooled connection right now. */
  get connected(): boolean {
    return holdsConnection(this.runner);
  }

  /** Registers a callback to run after this transaction commits; dropped on rollback. */
  onCommitted(callback: () => unknown): void {
    this.callbacks.add(callback);
  }

  /** Opens a SAVEPOINT (beginning the transaction first if needed). */
  savepoint(): Promise<void> {
    return this.runner.startTransaction();
  }

  /** Releases (`commit`) or rolls back to the innermost SAVEPOINT. */
  endSavepoint(commit: boolean): Promise<void> {
    return commit ? this.runner.commitTransaction() : this.runner.rollbackTransaction();
  }

  /** Commits the current transaction; the session stays usable and begins anew on its next query. */
  commit(): Promise<void> {
    switch (this.state) {
      case 'starting':
      case 'ending':
        return this.settle().then(() => this.commit());
      case 'closed':
        return Promise.reject(this.closedError());
      case 'idle':
        return this.runCallbacks();
      case 'active':
        return this.commitActive();
    }
  }

  /** Rolls back the current transaction and clears a rollback-only mark. */
  rollback(): Promise<void> {
    switch (this.state) {
      case 'starting':
      case 'ending':
        return this.settle().then(() => this.rollback());
      case 'closed':
        return Promise.reject(this.closedError());
      case 'idle':
      case 'active':
        this.rollbackOnly = false;
        this.callbacks.clear();
        return this.state === 'active' ? this.end('rollback') : RESOLVED;
    }
  }

  /** Rolls back what is uncommitted and releases the connection; later use fails clearly. */
  async close(reason: CloseReason): Promise<void> {
    if (this.state === 'closed') return;
    const pending = this.transition;
    this.state = 'closed';
    this.closeReason = reason;
    this.callbacks.clear();
    await pending?.catch(() => undefined);
    const runner = this.runner;
    if (runner.isReleased) return;
    if (runner.transactionDepth > 0) {
      try {
        await this.finishTransaction('rollback');
      } catch (error) {
        await discardConnection(runner, error);
        return;
      }
    }
    await this.original.release.call(runner);
  }

  /** Closes at once by dropping the connection (the server rolls back); later use throws `error`. */
  async abort(error: Error): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.abortError = error;
    this.callbacks.clear();
    // A connection still on its way is released by `acquire()` when it arrives.
    if (!this.acquiring && !this.runner.isReleased) await discardConnection(this.runner, error);
  }

  private commitActive(): Promise<void> {
    if (this.rollbackOnly || this.hooks.beforeCommit) return this.commitGuarded();
    return this.end('commit').then(this.afterCommitted);
  }

  private readonly afterCommitted = (): Promise<void> | undefined =>
    this.callbacks.pending ? this.runCallbacks() : undefined;

  private async commitGuarded(): Promise<void> {
    if (this.rollbackOnly) {
      await this.rollback();
      throw new RollbackOnlyError(messages.rollbackOnly(this.dataSourceName));
    }
    if (this.hooks.beforeCommit) {
      try {
        await this.hooks.beforeCommit(this.manager, this.dataSourceName);
      } catch (error) {
        this.callbacks.clear();
        await this.end('rollback');
        throw error;
      }
    }
    await this.end('commit');
    await this.runCallbacks();
  }

  /** Resolves when queries may run: begins the transaction on first use. */
  private async ready(): Promise<void> {
    for (;;) {
      switch (this.state) {
        case 'active':
          return;
        case 'closed':
          throw this.closedError();
        case 'idle':
          await this.start();
          break;
        case 'starting':
          if (contextStorage.getStore()?.starting === this) return;
          await this.transition;
          break;
        case 'ending':
          await this.transition?.catch(() => undefined);
          break;
      }
    }
  }

  private start(): Promise<void> {
    this.state = 'starting';
    const started = this.open().then(
      () => {
        if (this.state === 'starting') this.state = 'active';
      },
      (error: unknown) => {
        if (this.state === 'starting') this.state = 'idle';
        throw error;
      },
    );
    this.transition = started;
    return started;
  }

  private async open(): Promise<void> {
    const runner = this.runner;
    if (!holdsConnection(runner)) {
      if (poolHasRoom(this.dataSource)) await runner.connect();
      else await this.acquire();
    }
    const observed = this.dataSource.subscribers.length > 0;
    if (observed) await runner.broadcaster.broadcast('BeforeTransactionStart');
    for (const sql of beginStatements(this.driverType, this.begin)) await this.exec(sql);
    runner.transactionDepth = 1;
    if (observed) await runner.broadcaster.broadcast('AfterTransactionStart');
    const hook = this.hooks.onSessionStart;
    if (!hook) return;
    const parent = contextStorage.getStore() ?? new ContextFrame(undefined);
    try {
      await contextStorage.run(parent.startingFor(this), () =>
        hook(this.manager, this.dataSourceName),
      );
    } catch (error) {
      runner.transactionDepth = 0;
      await this.exec('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /**
   * Takes a pooled connection from a full pool within `acquireTimeout`. On timeout the session is closed with a
   * `ConnectionAcquireTimeoutError`; a connection that arrives later (or after the session was
   * aborted meanwhile) goes straight back to the pool.
   */
  private async acquire(): Promise<void> {
    const runner = this.runner;
    const ms = this.hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT;
    const giveBack = () => this.original.release.call(runner);
    this.acquiring = true;
    let connected: boolean;
    try {
      connected = await connectWithin(runner, ms, giveBack);
    } finally {
      this.acquiring = false;
    }
    if (!connected) {
      const held = contextStorage.getStore()?.unit?.connectionsHeld(this.dataSourceName) ?? 0;
      const error = new ConnectionAcquireTimeoutError(
        messages.acquireTimeout(this.dataSourceName, ms, poolSize(this.dataSource), held),
      );
      if (this.state !== 'closed') this.abortError = error;
      this.state = 'closed';
      this.callbacks.clear();
      throw error;
    }
    if (this.state === 'closed') {
      await giveBack();
      throw this.closedError();
    }
  }

  private end(statement: 'commit' | 'rollback'): Promise<void> {
    this.state = 'ending';
    const ended = this.finish(statement);
    this.transition = ended; // everyone who waits on it catches
    return ended;
  }

  private async finish(statement: 'commit' | 'rollback'): Promise<void> {
    const runner = this.runner;
    try {
      await this.finishTransaction(statement);
    } catch (error) {
      this.callbacks.clear();
      // A failed COMMIT leaves the transaction aborted: roll it back. A failed ROLLBACK (or
      // that second one) means the connection is broken: the pool must not get it back.
      const recovered =
        statement === 'commit' &&
        (await this.exec('ROLLBACK').then(
          () => true,
          () => false,
        ));
      if (!recovered) {
        this.state = 'closed';
        await discardConnection(runner, error);
        throw error;
      }
      this.reset();
      throw error;
    }
    this.reset();
  }

  private reset(): void {
    const runner = this.runner;
    runner.transactionDepth = 0;
    runner.isTransactionActive = true;
    this.rollbackOnly = false;
    if (this.state === 'ending') this.state = 'idle';
  }

  /** COMMIT or ROLLBACK straight on the connection (the runner's own methods would re-enter `query`). */
  private async finishTransaction(statement: 'commit' | 'rollback'): Promise<void> {
    const commit = statement === 'commit';
    const broadcaster =
      this.dataSource.subscribers.length > 0 ? this.runner.broadcaster : undefined;
    if (broadcaster)
      await broadcaster.broadcast(commit ? 'BeforeTransactionCommit' : 'BeforeTransactionRollback');
    await this.exec(commit ? 'COMMIT' : 'ROLLBACK');
    this.runner.transactionDepth = 0;
    if (broadcaster)
      await broadcaster.broadcast(commit ? 'AfterTransactionCommit' : 'AfterTransactionRollback');
  }

  /**
   * A statement of the session itself (BEGIN, COMMIT, ROLLBACK). User queries wait for the
   * session's state meanwhile, so it only has to wait for statements already in flight.
   */
  private exec(sql: string): Promise<unknown> {
    const send = () => this.original.query.call(this.runner, sql);
    return this.queue?.busy ? this.queue.run(send) : send();
  }

  private async settle(): Promise<void> {
    while (this.state === 'starting' || this.state === 'ending') {
      await this.transition?.catch(() => undefined);
    }
  }

  private runCallbacks(): Promise<void> {
    return this.callbacks.run((error) =>
      this.hooks.reportError(`afterCommit callback failed (${this.dataSourceName})`, error),
    );
  }

  private closedError(): Error {
    if (this.abortError) return this.abortError;
    return this.closeReason === 'context-ended'
      ? new SessionContextEndedError(messages.contextEnded(this.dataSourceName))
      : new SessionClosedError(messages.sessionClosed(this.dataSourceName));
  }
}
