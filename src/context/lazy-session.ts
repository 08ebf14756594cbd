import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { messages } from '../errors/messages.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { SessionClosedError } from '../errors/session-closed.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import { DEFAULT_ACQUIRE_TIMEOUT } from '../typeorm-context.options.js';
import { CommitCallbacks } from './commit-callbacks.js';
import { ContextFrame } from './context-frame.js';
import { contextStorage } from './context-storage.js';
import { type QueryArgs, SessionConnection } from './session-connection.js';
import type { CloseReason, SessionHooks } from './session-hooks.js';
import { type BeginOptions, poolSize } from './transaction-dialect.js';

type State = 'idle' | 'starting' | 'active' | 'ending' | 'closed';

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
  private closing?: Promise<void>;
  private readonly callbacks = new CommitCallbacks();
  private readonly connection: SessionConnection;
  private readonly dataSource: DataSource;

  constructor(
    /** Name of the data source this session belongs to. */
    readonly dataSourceName: string,
    dataSource: DataSource,
    private readonly hooks: SessionHooks,
    private readonly begin: BeginOptions = {},
  ) {
    const connection = new SessionConnection(dataSource);
    const { runner, original } = connection;
    this.connection = connection;
    this.dataSource = dataSource;
    this.manager = runner.manager;

    runner.isTransactionActive = true;
    runner.query = ((...args: QueryArgs) =>
      this.state === 'active'
        ? connection.query(args)
        : (this.state === 'idle' ? this.start() : this.ready()).then(() =>
            this.state === 'active'
              ? connection.query(args)
              : this.ready().then(() => connection.query(args)),
          )) as QueryRunner['query'];
    runner.stream = (...args) => this.ready().then(() => original.stream.apply(runner, args));
    runner.startTransaction = (isolationLevel) =>
      this.ready().then(async () => {
        await original.startTransaction.call(runner, isolationLevel);
        this.callbacks.mark();
      });
    runner.commitTransaction = () => {
      if (runner.transactionDepth <= 1) return this.commit();
      this.callbacks.unmark(true);
      return original.commitTransaction.call(runner);
    };
    runner.rollbackTransaction = () => {
      if (runner.transactionDepth <= 1) return this.rollback();
      this.callbacks.unmark(false);
      return original.rollbackTransaction.call(runner);
    };
    runner.release = () => this.close('closed');
  }

  /** Whether the session holds a pooled connection right now. */
  get connected(): boolean {
    return this.connection.held;
  }

  /** Registers a callback to run after this transaction commits; dropped on rollback. */
  onCommitted(callback: () => unknown): void {
    this.callbacks.add(callback);
  }

  /** Opens a SAVEPOINT (beginning the transaction first if needed). */
  savepoint(): Promise<void> {
    return this.connection.runner.startTransaction();
  }

  /** Releases (`commit`) or rolls back to the innermost SAVEPOINT. */
  endSavepoint(commit: boolean): Promise<void> {
    const runner = this.connection.runner;
    return commit ? runner.commitTransaction() : runner.rollbackTransaction();
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

  /**
   * Rolls back what is uncommitted and releases the connection; later use fails clearly. Every
   * caller gets the same close (TypeORM's pool shutdown loops on `release()` until the runner is
   * gone, so a second call must wait for the first, not return at once).
   */
  close(reason: CloseReason): Promise<void> {
    if (this.closing) return this.closing;
    if (this.state === 'closed') return RESOLVED; // aborted or broken: the connection is gone
    this.closing = this.shutDown(reason);
    return this.closing;
  }

  /** Closes at once by dropping the connection (the server rolls back); later use throws `error`. */
  async abort(error: Error): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.abortError = error;
    this.callbacks.clear();
    // A connection still on its way is released by `open()` when it arrives.
    const connection = this.connection;
    if (!connection.acquiring && !connection.runner.isReleased) {
      this.closing = connection.discard(error);
      await this.closing;
    }
  }

  private async shutDown(reason: CloseReason): Promise<void> {
    const pending = this.transition;
    this.state = 'closed';
    this.closeReason = reason;
    this.callbacks.clear();
    await pending?.catch(() => undefined);
    const connection = this.connection;
    if (connection.runner.isReleased) return;
    if (connection.runner.transactionDepth > 0) {
      try {
        await connection.finish('rollback');
      } catch (error) {
        await connection.discard(error);
        return;
      }
    }
    await connection.release();
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
    await this.connect();
    await this.connection.begin(this.begin);
    const hook = this.hooks.onSessionStart;
    if (!hook) return;
    const parent = contextStorage.getStore() ?? new ContextFrame(undefined);
    try {
      await contextStorage.run(parent.startingFor(this), () =>
        hook(this.manager, this.dataSourceName),
      );
    } catch (error) {
      await this.connection.rollbackQuietly();
      throw error;
    }
  }

  /**
   * Takes a pooled connection within `acquireTimeout`. On timeout the session is closed with a
   * `ConnectionAcquireTimeoutError`; a connection that arrives after the session was closed or
   * aborted meanwhile goes straight back to the pool.
   */
  private async connect(): Promise<void> {
    const ms = this.hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT;
    if (await this.connection.connect(ms)) {
      if (this.state !== 'closed') return;
      await this.connection.release();
      throw this.closedError();
    }
    const held = contextStorage.getStore()?.unit?.connectionsHeld(this.dataSourceName) ?? 0;
    const error = new ConnectionAcquireTimeoutError(
      messages.acquireTimeout(this.dataSourceName, ms, poolSize(this.dataSource), held),
    );
    if (this.state !== 'closed') this.abortError = error;
    this.state = 'closed';
    this.callbacks.clear();
    throw error;
  }

  private end(statement: 'commit' | 'rollback'): Promise<void> {
    this.state = 'ending';
    const ended = this.finish(statement);
    this.transition = ended; // everyone who waits on it catches
    return ended;
  }

  private async finish(statement: 'commit' | 'rollback'): Promise<void> {
    const connection = this.connection;
    try {
      await connection.finish(statement);
    } catch (error) {
      this.callbacks.clear();
      // A failed COMMIT leaves the transaction aborted: roll it back. A failed ROLLBACK (or
      // that second one) means the connection is broken: the pool must not get it back.
      const recovered = statement === 'commit' && (await connection.rollbackQuietly());
      if (!recovered) {
        this.state = 'closed';
        await connection.discard(error);
        throw error;
      }
      this.reset();
      throw error;
    }
    this.reset();
  }

  private reset(): void {
    this.connection.reset();
    this.rollbackOnly = false;
    if (this.state === 'ending') this.state = 'idle';
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
