import type { SessionRuntime } from '../context/session-runtime.js';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { logger } from '../logger.js';
import { UnitOfWork } from '../context/unit-of-work.js';
import { CallbackError } from '../errors/callback.error.js';
import { messages } from '../errors/messages.js';
import { PartlyCommittedError } from '../errors/partly-committed.error.js';
import type { SessionCallback } from '../interfaces/transaction-options.interface.js';
import type { ResolvedTransactionOptions } from '../typeorm-context.options.js';
import {
  type TransactionMessage,
  traceTransaction,
  transactionChannel,
} from '../diagnostics/channels.js';
import { attachUnit } from '../diagnostics/message-unit.js';
import { dbTarget } from '../diagnostics/db-target.js';
import { isRetryableError } from './retryable-error.js';
import { raceTimeout, type TimeoutTarget } from './transaction-timeout.js';

/**
 * The transactions blocks own (REQUIRES_NEW, or REQUIRED and NESTED with none to join), for the
 * `TransactionRunner`: each in a unit of work of its own, committed or rolled back when the block
 * settles, raced against its `timeout`, re-run on a serialization failure or deadlock.
 */
export class OwnedTransactions {
  constructor(private readonly runtime: SessionRuntime) {}

  /**
   * A transaction this call owns, re-run on a serialization failure or deadlock, unless any of it
   * committed already (one data source of several, or all of it before a callback failed).
   */
  run<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
  ): Promise<T> {
    if (options.retry === 0) return this.attempt(options, fn, frame, 1);
    return this.ownRetrying(options, fn, frame);
  }

  /** One attempt, traced on the `transaction` channel when it has subscribers. */
  private attempt<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
    attempt: number,
  ): Promise<T> {
    if (!transactionChannel.hasSubscribers) return this.ownOnce(options, fn, frame);
    const { dataSource, propagation, label, isolationLevel, readOnly, replica } = options;
    const db = dbTarget(this.runtime.dataSource(dataSource));
    const begins = { dataSource, db, propagation, mode: 'begin' as const, label, attempt };
    const message: TransactionMessage = { ...begins, isolationLevel, readOnly, replica };
    return traceTransaction(message, () => this.ownOnce(options, fn, frame, message));
  }

  private async ownRetrying<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(options, fn, frame, attempt + 1);
      } catch (error) {
        // A block of which anything committed fails with an error that is never retryable.
        if (attempt >= options.retry || !isRetryableError(error)) throw error;
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
   * The attempt's `transaction` channel message, if traced, learns the block's unit.
   */
  private ownOnce<T>(
    options: ResolvedTransactionOptions,
    fn: SessionCallback<T>,
    frame: ContextFrame | undefined,
    message?: TransactionMessage,
  ): Promise<T> {
    const { dataSource: name, isolationLevel, readOnly, replica, timeout, label } = options;
    const begin = { isolationLevel, readOnly, replica, timeout, label };
    const outer = frame?.unit;
    // Outside any context of this app, a unit that follows the one whose callback runs this
    // (read-your-writes), opened in another app's context if the call came from there.
    const unit = outer ? outer.openBlock() : new UnitOfWork(frame?.routingUnit, this.runtime);
    if (message) attachUnit(message, unit);
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
          (commit) => {
            const ended = unit.end(commit).catch((error: unknown) => {
              atCommit = commit;
              throw error;
            });
            // What the block committed, the block around it committed too: never re-run it.
            return outer
              ? ended.finally(() => outer.addCommits(unit.committedDataSources()))
              : ended;
          },
        ),
      )
      .catch((error: unknown) => {
        throw this.failedAfterCommit(unit, options, error, atCommit);
      });
  }

  /**
   * The error an owned block that failed rejects with. Once anything of it committed (midway, or
   * one data source before the next one's COMMIT failed) it is never re-run; a failure at its
   * COMMIT, or one that would make a block around it re-run it, becomes `PartlyCommittedError`.
   * A `CallbackError` (everything committed, then a callback failed) stays as it is. None of
   * these is retryable (`isRetryableError()`): that is what keeps a block that committed from
   * being re-run.
   */
  private failedAfterCommit(
    unit: UnitOfWork,
    options: ResolvedTransactionOptions,
    error: unknown,
    atCommit: boolean,
  ): unknown {
    if (error instanceof CallbackError || error instanceof PartlyCommittedError) return error;
    const committed = unit.committedDataSources();
    if (committed.length === 0) return error;
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
}
