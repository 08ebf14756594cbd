import type { EntityManager } from 'typeorm';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { logger } from '../logger.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import type { UnitOfWork } from '../context/unit-of-work.js';
import { boundedManager } from '../session/bounded-manager.js';
import { LazySession } from '../session/lazy-session.js';
import { messages } from '../errors/messages.js';
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
  withDefaults,
} from '../typeorm-context.options.js';
import {
  type TransactionMessage,
  type TransactionMode,
  traceTransaction,
  transactionChannel,
} from '../diagnostics/channels.js';
import { dbTarget } from '../diagnostics/db-target.js';
import { OwnedTransactions } from './owned-transactions.js';
import { Propagation } from './propagation.enum.js';

/** The transaction a block finds for its data source: a session, the unit's lazy one, or none. */
type Current = LazySession | UnitOfWork | undefined;

/**
 * The one place that decides propagation, for `@Transactional()`, `sessionContext.atomic()` and
 * `sessionFactory.atomic()` alike.
 */
export class TransactionRunner {
  private readonly warned = new WeakSet<object>();
  private readonly owned: OwnedTransactions;

  constructor(private readonly runtime: SessionRuntime) {
    this.owned = new OwnedTransactions(runtime);
  }

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
    const blocks = frame?.unit?.outermost.openBlocks;
    if (blocks) return blocks.run(() => this.propagate(resolved, options, fn, frame, name));
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
    if (resolved.propagation === Propagation.REQUIRES_NEW)
      return this.owned.run(this.begins(resolved, options), fn, frame);
    const current = this.current(frame, name);
    switch (resolved.propagation) {
      case Propagation.REQUIRED:
        return current
          ? this.join(current, resolved, fn, options)
          : this.owned.run(this.begins(resolved, options), fn, frame);
      case Propagation.NESTED:
        return current
          ? this.nest(current, resolved, fn, options)
          : this.owned.run(this.begins(resolved, options), fn, frame);
      case Propagation.MANDATORY:
        if (!current) throw new TransactionRequiredError(messages.transactionRequired(name));
        return this.join(current, resolved, fn, options);
      case Propagation.NEVER:
        if (current) throw new TransactionNotAllowedError(messages.transactionNotAllowed(name));
        return this.without(resolved, frame, fn);
      case Propagation.SUPPORTS:
        return current
          ? this.join(current, resolved, fn, options)
          : this.without(resolved, frame, fn);
      case Propagation.NOT_SUPPORTED:
        return this.without(resolved, frame, fn, current !== undefined);
    }
  }

  /** The options of a transaction the block begins: the module's defaults under its own. */
  private begins(
    resolved: ResolvedTransactionOptions,
    raw: TransactionOptions | undefined,
  ): ResolvedTransactionOptions {
    const defaults = this.runtime.options.defaultTransactionOptions;
    return defaults === undefined ? resolved : withDefaults(resolved, raw, defaults);
  }

  private current(frame: ContextFrame | undefined, name: string): Current {
    const override = frame?.find(name);
    if (override !== undefined) return override instanceof LazySession ? override : undefined;
    const unit = frame?.unit;
    if (unit?.ended) throw new SessionContextEndedError(messages.contextEnded(name));
    return unit;
  }

  private session(current: LazySession | UnitOfWork, name: string): LazySession {
    return current instanceof LazySession ? current : this.runtime.unitSession(current, name);
  }

  /** REQUIRED and friends with a transaction: an escaping error makes it rollback-only. */
  private join<T>(
    current: LazySession | UnitOfWork,
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    raw: TransactionOptions | undefined,
  ): Promise<T> {
    this.warnIgnored(options, raw, 'joins the current transaction');
    // The session first: its unit's start is published before the block's.
    const session = this.session(current, options.dataSource);
    if (transactionChannel.hasSubscribers)
      return traceTransaction(this.traced(options, 'join'), () => this.joinNow(session, fn));
    return this.joinNow(session, fn);
  }

  private joinNow<T>(session: LazySession, fn: SessionCallback<T>): Promise<T> {
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
    const session = this.session(current, options.dataSource);
    if (transactionChannel.hasSubscribers)
      return traceTransaction(this.traced(options, 'savepoint'), () => session.nested(fn));
    return session.nested(fn);
  }

  /** NEVER, SUPPORTS without a transaction, NOT_SUPPORTED: plain auto-committed queries. */
  private without<T>(
    options: ResolvedTransactionOptions,
    frame: ContextFrame | undefined,
    fn: SessionCallback<T>,
    suspends = false,
  ): Promise<T> {
    const name = options.dataSource;
    if (transactionChannel.hasSubscribers)
      return traceTransaction(this.traced(options, 'none'), () =>
        this.runWithout(frame, name, fn, suspends),
      );
    return this.runWithout(frame, name, fn, suspends);
  }

  private async runWithout<T>(
    frame: ContextFrame | undefined,
    name: string,
    fn: SessionCallback<T>,
    suspends: boolean,
  ): Promise<T> {
    // The suspended transaction keeps its connection: the block's own wait for one is bounded.
    const manager: EntityManager = suspends
      ? boundedManager(
          this.runtime.dataSource(name),
          name,
          this.runtime.options.acquireTimeout,
          this.runtime.hooks.waits,
          frame,
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

  /** The `transaction` channel's message of a block that begins no transaction of its own. */
  private traced(options: ResolvedTransactionOptions, mode: TransactionMode): TransactionMessage {
    const { dataSource, propagation, label } = options;
    const db = dbTarget(this.runtime.dataSource(dataSource));
    return { dataSource, db, propagation, mode, label, attempt: 1 };
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
