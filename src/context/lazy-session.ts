import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { messages } from '../errors/messages.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { SessionClosedError } from '../errors/session-closed.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import type { SessionHook } from '../interfaces/typeorm-context-options.interface.js';
import { DEFAULT_ACQUIRE_TIMEOUT } from '../typeorm-context.options.js';
import { ContextFrame } from './context-frame.js';
import { contextStorage } from './context-storage.js';
import {
  type BeginOptions,
  beginStatements,
  discardConnection,
  holdsConnection,
  poolSize,
} from './transaction-dialect.js';

/** The module-level hooks every session runs. */
export interface SessionHooks {
  onSessionStart?: SessionHook;
  beforeCommit?: SessionHook;
  /** Milliseconds to wait for a pooled connection. Default: `DEFAULT_ACQUIRE_TIMEOUT`. */
  acquireTimeout?: number;
  /** Receives errors of after-commit callbacks (they never undo the commit). */
  reportError(message: string, error: unknown): void;
}

/** Why a session was closed, which decides the message of a late use. */
export type CloseReason = 'closed' | 'context-ended';

type State = 'idle' | 'starting' | 'active' | 'ending' | 'closed';
type Original = Pick<
  QueryRunner,
  'query' | 'stream' | 'startTransaction' | 'commitTransaction' | 'rollbackTransaction' | 'release'
>;

/** QueryRunner members TypeORM keeps protected or read-only that the session drives. */
type RunnerInternals = Omit<QueryRunner, 'isTransactionActive'> & {
  isTransactionActive: boolean;
  transactionDepth: number;
};

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
  private afterCommit: Array<() => unknown> = [];
  /** `afterCommit.length` at each open SAVEPOINT: rolling back to it drops what came after. */
  private savepointMarks: number[] = [];
  /** True while the first query waits for a pooled connection. */
  private acquiring = false;
  private readonly dataSource: DataSource;
  private readonly runner: RunnerInternals & QueryRunner;
  private readonly original: Original;
  private readonly driverType: string;

  constructor(
    /** Name of the data source this session belongs to. */
    readonly dataSourceName: string,
    dataSource: DataSource,
    private readonly hooks: SessionHooks,
    private begin: BeginOptions = {},
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

    runner.isTransactionActive = true;
    runner.query = ((...args: Parameters<QueryRunner['query']>) =>
      this.state === 'active'
        ? query.apply(runner, args)
        : this.ready().then(() => query.apply(runner, args))) as QueryRunner['query'];
    runner.stream = (...args) => this.ready().then(() => stream.apply(runner, args));
    runner.startTransaction = (isolationLevel) =>
      this.ready().then(async () => {
        await startTransaction.call(runner, isolationLevel);
        this.savepointMarks.push(this.afterCommit.length);
      });
    runner.commitTransaction = () => {
      if (runner.transactionDepth <= 1) return this.commit();
      this.savepointMarks.pop();
      return commitTransaction.call(runner);
    };
    runner.rollbackTransaction = () => {
      if (runner.transactionDepth <= 1) return this.rollback();
      this.afterCommit.length = this.savepointMarks.pop() ?? this.afterCommit.length;
      return rollbackTransaction.call(runner);
    };
    runner.release = () => this.close('closed');
  }

  /** Whether a transaction has begun (BEGIN was sent) and not yet ended. */
  get inTransaction(): boolean {
    return this.state === 'active' || this.state === 'starting';
  }

  /** Whether the session was closed; a closed session never opens again. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Whether the session holds a pooled connection right now. */
  get connected(): boolean {
    return holdsConnection(this.runner);
  }

  /** Sets how the next transaction begins; false when one has already begun. */
  configure(begin: BeginOptions): boolean {
    if (this.state !== 'idle') return false;
    this.begin = begin;
    return true;
  }

  /** Registers a callback to run after this transaction commits; dropped on rollback. */
  onCommitted(callback: () => unknown): void {
    this.afterCommit.push(callback);
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
  async commit(): Promise<void> {
    await this.settle();
    if (this.state === 'closed') throw this.closedError();
    if (this.state !== 'active') return this.runAfterCommit();
    if (this.rollbackOnly) {
      await this.rollback();
      throw new RollbackOnlyError(messages.rollbackOnly(this.dataSourceName));
    }
    if (this.hooks.beforeCommit) {
      try {
        await this.hooks.beforeCommit(this.manager, this.dataSourceName);
      } catch (error) {
        this.afterCommit = [];
        await this.end('rollback');
        throw error;
      }
    }
    await this.end('commit');
    await this.runAfterCommit();
  }

  /** Rolls back the current transaction and clears a rollback-only mark. */
  async rollback(): Promise<void> {
    await this.settle();
    if (this.state === 'closed') throw this.closedError();
    this.rollbackOnly = false;
    this.afterCommit = [];
    if (this.state === 'active') await this.end('rollback');
  }

  /** Rolls back what is uncommitted and releases the connection; later use fails clearly. */
  async close(reason: CloseReason): Promise<void> {
    if (this.state === 'closed') return;
    const pending = this.transition;
    this.state = 'closed';
    this.closeReason = reason;
    this.afterCommit = [];
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
    this.afterCommit = [];
    // A connection still on its way is released by `acquire()` when it arrives.
    if (!this.acquiring && !this.runner.isReleased) await discardConnection(this.runner, error);
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
    await this.acquire();
    await runner.broadcaster.broadcast('BeforeTransactionStart');
    for (const sql of beginStatements(this.driverType, this.begin)) {
      await this.original.query.call(runner, sql);
    }
    runner.transactionDepth = 1;
    await runner.broadcaster.broadcast('AfterTransactionStart');
    const hook = this.hooks.onSessionStart;
    if (!hook) return;
    const parent = contextStorage.getStore() ?? new ContextFrame(undefined);
    try {
      await contextStorage.run(parent.startingFor(this), () =>
        hook(this.manager, this.dataSourceName),
      );
    } catch (error) {
      runner.transactionDepth = 0;
      await this.original.query.call(runner, 'ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /**
   * Takes a pooled connection within `acquireTimeout`. On timeout the session is closed with a
   * `ConnectionAcquireTimeoutError`; a connection that arrives later (or after the session was
   * aborted meanwhile) goes straight back to the pool.
   */
  private async acquire(): Promise<void> {
    const runner = this.runner;
    if (holdsConnection(runner)) return;
    const ms = this.hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT;
    const connecting = runner.connect();
    const giveBack = () => this.original.release.call(runner);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), ms);
    });
    this.acquiring = true;
    try {
      if ((await Promise.race([connecting, expired])) === 'expired') {
        const error = this.acquireTimeoutError(ms);
        if (this.state !== 'closed') this.abortError = error;
        this.state = 'closed';
        this.afterCommit = [];
        connecting.then(giveBack, () => undefined);
        throw error;
      }
    } finally {
      this.acquiring = false;
      clearTimeout(timer);
    }
    if (this.state === 'closed') {
      await giveBack();
      throw this.closedError();
    }
  }

  private acquireTimeoutError(ms: number): ConnectionAcquireTimeoutError {
    const unit = contextStorage.getStore()?.unit;
    const held = unit?.connectionsHeld(this.dataSourceName) ?? 0;
    return new ConnectionAcquireTimeoutError(
      messages.acquireTimeout(this.dataSourceName, ms, poolSize(this.dataSource), held),
    );
  }

  private async end(statement: 'commit' | 'rollback'): Promise<void> {
    const runner = this.runner;
    this.state = 'ending';
    let failure: unknown;
    const ended = (async () => {
      try {
        await this.finishTransaction(statement);
      } catch (error) {
        failure = error;
        // A failed COMMIT leaves the transaction aborted: roll it back. A failed ROLLBACK (or
        // that second one) means the connection is broken: the pool must not get it back.
        const recovered =
          statement === 'commit' &&
          (await this.original.query.call(runner, 'ROLLBACK').then(
            () => true,
            () => false,
          ));
        if (!recovered) {
          this.state = 'closed';
          await discardConnection(runner, error);
          return;
        }
      }
      runner.transactionDepth = 0;
      runner.isTransactionActive = true;
      this.rollbackOnly = false;
      this.savepointMarks = [];
      if (this.state === 'ending') this.state = 'idle';
    })();
    this.transition = ended;
    await ended;
    if (failure !== undefined) {
      this.afterCommit = [];
      throw failure;
    }
  }

  /** COMMIT or ROLLBACK straight on the connection (the runner's own methods would re-enter `query`). */
  private async finishTransaction(statement: 'commit' | 'rollback'): Promise<void> {
    const runner = this.runner;
    const [before, after] =
      statement === 'commit'
        ? (['BeforeTransactionCommit', 'AfterTransactionCommit'] as const)
        : (['BeforeTransactionRollback', 'AfterTransactionRollback'] as const);
    await runner.broadcaster.broadcast(before);
    await this.original.query.call(runner, statement === 'commit' ? 'COMMIT' : 'ROLLBACK');
    runner.transactionDepth = 0;
    await runner.broadcaster.broadcast(after);
  }

  private async settle(): Promise<void> {
    while (this.state === 'starting' || this.state === 'ending') {
      await this.transition?.catch(() => undefined);
    }
  }

  /**
   * Runs the callbacks outside any context: the transaction they waited for is over, so a write
   * through the context's session would begin a new one that nobody commits (or join an outer
   * one). There `session()` fails clearly and `@Transactional()` / the factory commit on their own.
   */
  private async runAfterCommit(): Promise<void> {
    const callbacks = this.afterCommit;
    this.afterCommit = [];
    const outside = new ContextFrame(undefined);
    for (const callback of callbacks) {
      try {
        await contextStorage.run(outside, callback);
      } catch (error) {
        this.hooks.reportError(`afterCommit callback failed (${this.dataSourceName})`, error);
      }
    }
  }

  private closedError(): Error {
    if (this.abortError) return this.abortError;
    return this.closeReason === 'context-ended'
      ? new SessionContextEndedError(messages.contextEnded(this.dataSourceName))
      : new SessionClosedError(messages.sessionClosed(this.dataSourceName));
  }
}
