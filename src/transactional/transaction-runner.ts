import type { EntityManager } from 'typeorm';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { logger } from '../context/logger.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import { UnitOfWork } from '../context/unit-of-work.js';
import { boundedManager } from '../session/bounded-manager.js';
import { LazySession } from '../session/lazy-session.js';
import { messages } from '../errors/messages.js';
import { CallbackError } from '../errors/callback.error.js';
import { PartlyCommittedError } from '../errors/partly-committed.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import { TransactionNotAllowedError } from '../errors/transaction-not-allowed.error.js';
import { TransactionRequiredError } from '../errors/transaction-required.error.js';
import type {
  SessionCallback,
  TransactionOptions,
} from '../interfaces/transaction-options.interface.js';
import {
  type ResolvedTransactionOptions,
  resolveTransactionOptions,
} from '../typeorm-context.options.js';
import { Propagation } from './propagation.enum.js';
import { isRetryableError } from './retryable-error.js';
import { raceTimeout, type TimeoutTarget } from './transaction-timeout.js';

/** The transaction a block finds for its data source: a session, the unit's lazy one, or none. */
type Current = LazySession | UnitOfWork | undefined;

/**
 * The one place that decides propagation, for `@Transactional()`, `sessionContext.atomic()` and
 * `sessionFactory.atomic()` alike.
 */
export class TransactionRunner {
  private readonly warned = new WeakSet<object>();

  constructor(private readonly runtime: SessionRuntime) {}

  /** Runs `fn` with the session its propagation gives it. */
  run<T>(
    options: TransactionOptions | undefined,
    fn: SessionCallback<T>,
    defaultPropagation: Propagation = Propagation.REQUIRED,
    label?: string,
  ): Promise<T> {
    try {
      const resolved = resolveTransactionOptions(options, defaultPropagation);
      if (label !== undefined) resolved.label = label;
      return this.decide(resolved, options, fn);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** Like `run()` with options resolved once up front (what `@Transactional()` does). */
  runResolved<T>(
    resolved: ResolvedTransactionOptions,
    options: TransactionOptions | undefined,
    fn: SessionCallback<T>,
  ): Promise<T> {
    try {
      return this.decide(resolved, options, fn);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private decide<T>(
    resolved: ResolvedTransactionOptions,
    options: TransactionOptions | undefined,
    fn: SessionCallback<T>,
  ): Promise<T> {
    const name = resolved.dataSource;
    this.runtime.dataSource(name);
    const frame = this.runtime.frame();
    // A response sent value by value waits for its unit's open blocks before a value's commit.
    const unit = frame?.unit?.outermost;
    if (unit?.countsBlocks) {
      return unit.countBlock(() => this.propagate(resolved, options, fn, frame, name));
    }
    return this.propagate(resolved, options, fn, frame, name);
  }

  private propagate<T>(
    resolved: ResolvedTransactionOptions,
    options: TransactionOptions | undefined,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
    name: string,
  ): Promise<T> {
    // An owned transaction needs no live unit: REQUIRES_NEW works after the context ended.
    if (resolved.propagation === Propagation.REQUIRES_NEW) return this.own(resolved, fn, frame);
    const current = this.current(frame, name);
    switch (resolved.propagation) {
      case Propagation.REQUIRED:
        return current ? this.join(current, resolved, fn, options) : this.own(resolved, fn, frame);
      case Propagation.NESTED:
        return current ? this.nest(current, resolved, fn, options) : this.own(resolved, fn, frame);
      case Propagation.MANDATORY:
        if (!current) throw new TransactionRequiredError(messages.transactionRequired(name));
        return this.join(current, resolved, fn, options);
      case Propagation.NEVER:
        if (current) throw new TransactionNotAllowedError(messages.transactionNotAllowed(name));
        return this.without(frame, name, fn);
      case Propagation.SUPPORTS:
        return current ? this.join(current, resolved, fn, options) : this.without(frame, name, fn);
      case Propagation.NOT_SUPPORTED:
        return this.without(frame, name, fn, current !== undefined);
    }
  }

  private current(frame: ContextFrame | undefined, name: string): Current {
    const override = frame?.find(name);
    if (override !== undefined) return override instanceof LazySession ? override : undefined;
    const unit = frame?.unit;
    if (unit?.ended) throw new SessionContextEndedError(messages.contextEnded(name));
    return unit;
  }

  private session(current: LazySession | UnitOfWork, name: string): LazySession {
    if (current instanceof LazySession) return current;
    return (
      current.live(name) ??
      current.session(name, () =>
        this.runtime.createSession(name, 'context', current.begin?.(name)),
      )
    );
  }

  /** REQUIRED and friends with a transaction: an escaping error makes it rollback-only. */
  private join<T>(
    current: LazySession | UnitOfWork,
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    raw: TransactionOptions | undefined,
  ): Promise<T> {
    this.warnIgnored(options, raw, 'joins the current transaction');
    const session = this.session(current, options.dataSource);
    const markRollbackOnly = (error: unknown): never => {
      session.markRollbackOnly();
      throw error;
    };
    try {
      return Promise.resolve(fn(session.manager)).then(undefined, markRollbackOnly);
    } catch (error) {
      return Promise.reject(error as Error).then(undefined, markRollbackOnly);
    }
  }

  /** NESTED: a SAVEPOINT, after the blocks started before it on the same session. */
  private nest<T>(
    current: LazySession | UnitOfWork,
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    raw: TransactionOptions | undefined,
  ): Promise<T> {
    this.warnIgnored(options, raw, 'runs in a savepoint of the current transaction');
    return this.session(current, options.dataSource).nested(fn);
  }

  /**
   * A transaction this call owns, re-run on a serialization failure or deadlock, unless any of it
   * committed already (one data source of several, or all of it before a callback failed).
   */
  private own<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
  ): Promise<T> {
    if (options.retry === 0) return this.ownOnce(options, fn, frame, { committed: false });
    return this.ownRetrying(options, fn, frame);
  }

  private async ownRetrying<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const outcome = { committed: false };
      try {
        return await this.ownOnce(options, fn, frame, outcome);
      } catch (error) {
        const retry = attempt < options.retry && !outcome.committed;
        if (!retry || !isRetryableError(error)) throw error;
        logger.warn(
          `Retrying transaction of '${options.dataSource}' (${attempt + 1}/${options.retry}) after: ${String(error)}`,
        );
      }
    }
  }

  /**
   * One attempt of an owned block: a context of its own for every data source, like
   * `runInNewContext()` (inside another context, a block of that context's unit: its sessions of
   * other data sources are its own too, and commit or roll back with it, never with the caller's).
   */
  private ownOnce<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
    outcome: { committed: boolean },
  ): Promise<T> {
    const { dataSource: name, isolationLevel, readOnly, replica, timeout, label } = options;
    const begin = { isolationLevel, readOnly, replica, timeout, label };
    const outer = frame?.unit;
    // Outside any context of this app, a unit that follows the one whose callback runs this
    // (read-your-writes), opened in another app's context if the call came from there.
    const unit = outer ? outer.openBlock() : new UnitOfWork(frame?.routingUnit, this.runtime);
    // A session the block replaces (after close()) begins like the first; its sessions of other
    // data sources get the statement timeout (see `target` below).
    const others = timeout === undefined ? undefined : { timeout, label };
    unit.begin = (dataSource) => (dataSource === name ? begin : others);
    const owner = outer ? 'block' : 'context';
    const session = unit.session(name, () => this.runtime.createSession(name, owner, begin));
    // A timeout stops every session of the block, whichever data source it is of.
    const target: TimeoutTarget = {
      dataSourceName: name,
      abort: (error) => {
        for (const used of unit.sessions.values()) used.abort(error);
      },
    };
    const foreign = contextStorage.getStore();
    // Inside a context, the block opens in the frame current here: another app's frame around it
    // (A's block called from B's code in A's context) stays B's code's context inside the block.
    const around = outer ? foreign : foreign?.unit && foreign;
    let atCommit = false;
    return contextStorage
      .run(ContextFrame.forUnit(unit, around), () =>
        this.settle(
          () => fn(session.manager),
          target,
          options,
          (commit) =>
            unit.end(commit).catch((error: unknown) => {
              atCommit = commit;
              throw error;
            }),
        ),
      )
      .catch((error: unknown) => {
        throw this.failedAfterCommit(unit, options, error, atCommit, outcome);
      });
  }

  /**
   * The error an owned block that failed rejects with. Once anything of it committed (midway, or
   * one data source before the next one's COMMIT failed) it is never re-run; a failure at its
   * COMMIT, or one that would make a block around it re-run it, becomes `PartlyCommittedError`.
   * A `CallbackError` (everything committed, then a callback failed) stays as it is.
   */
  private failedAfterCommit(
    unit: UnitOfWork,
    options: ResolvedTransactionOptions,
    error: unknown,
    atCommit: boolean,
    outcome: { committed: boolean },
  ): unknown {
    if (error instanceof CallbackError || error instanceof PartlyCommittedError) {
      outcome.committed = true;
      return error;
    }
    const committed = unit.committedDataSources();
    if (committed.length === 0) return error;
    outcome.committed = true;
    if (!atCommit && !isRetryableError(error)) return error;
    return new PartlyCommittedError(messages.partlyCommitted(committed, options.label), {
      cause: error,
    });
  }

  /** Runs `work`, then ends the transaction: commit on success, roll back on failure. */
  private async settle<T>(
    work: () => Promise<T> | T,
    session: TimeoutTarget,
    options: ResolvedTransactionOptions,
    end: (commit: boolean) => Promise<void>,
  ): Promise<T> {
    let result: T;
    try {
      result = await this.timed(work, session, options);
    } catch (error) {
      await end(false).catch((rollbackError: unknown) =>
        this.runtime.hooks.reportError('Rollback after a failed block failed', rollbackError),
      );
      throw error;
    }
    await end(true);
    return result;
  }

  /** `work()`, or with a `timeout`, raced against it (no async frame when there is none). */
  private timed<T>(
    work: () => Promise<T> | T,
    session: TimeoutTarget,
    options: ResolvedTransactionOptions,
  ): Promise<T> | T {
    return options.timeout === undefined ? work() : raceTimeout(work, session, options.timeout);
  }

  /** NEVER, SUPPORTS without a transaction, NOT_SUPPORTED: plain auto-committed queries. */
  private async without<T>(
    frame: ContextFrame | undefined,
    name: string,
    fn: SessionCallback<T>,
    suspends = false,
  ): Promise<T> {
    // The suspended transaction keeps its connection: the block's own wait for one is bounded.
    const manager: EntityManager = suspends
      ? boundedManager(
          this.runtime.dataSource(name),
          name,
          this.runtime.options.acquireTimeout,
          this.runtime.hooks.waits,
        )
      : this.runtime.dataSource(name).manager;
    const current = contextStorage.getStore();
    const inner = (frame ?? ContextFrame.outside(this.runtime, current)).with(
      name,
      manager,
      current,
    );
    return contextStorage.run(inner, () => fn(manager));
  }

  private warnIgnored(
    options: ResolvedTransactionOptions,
    raw: TransactionOptions | undefined,
    what: string,
  ): void {
    if (raw === undefined || this.warned.has(raw)) return;
    const ignored = (['isolationLevel', 'readOnly', 'replica', 'timeout'] as const).filter(
      (key) => options[key] !== undefined,
    );
    if (options.retry > 0) ignored.push('retry' as never);
    if (ignored.length === 0) return;
    this.warned.add(raw);
    logger.warn(
      `A ${options.propagation} block of '${options.dataSource}' ${what}, so ${ignored.join(', ')} ` +
        'do not apply (they shape only a transaction the block begins). Use Propagation.REQUIRES_NEW ' +
        'for a transaction of its own.',
    );
  }
}
