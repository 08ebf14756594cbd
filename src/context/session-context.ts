import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { TypeOrmContextError } from '../errors/typeorm-context.error.js';
import { messages } from '../errors/messages.js';
import type {
  SessionCallback,
  TransactionOptions,
} from '../interfaces/transaction-options.interface.js';
import { DEFAULT_DATA_SOURCE } from '../typeorm-context.options.js';
import { contextStorage } from './context-storage.js';
import { LazySession } from '../session/lazy-session.js';
import { runCallbacks } from '../session/transaction-callbacks.js';
import { reportError } from './logger.js';
import { SessionRuntime } from './session-runtime.js';

/**
 * The current context's sessions: one lazily created session per data source for the request,
 * job or `runInNewContext()` the code runs in.
 */
@Injectable()
export class SessionContext {
  constructor(private readonly runtime: SessionRuntime) {}

  /** The current session of `dataSource` (sync); no connection and no BEGIN until its first query. */
  session(dataSource: string = DEFAULT_DATA_SOURCE): EntityManager {
    const session = this.runtime.current(dataSource);
    return session instanceof LazySession ? session.manager : session;
  }

  /** Whether a session context is current (and not ended) here. */
  isActive(): boolean {
    const unit = contextStorage.getStore()?.unit;
    return unit !== undefined && !unit.ended;
  }

  /**
   * Commits now and gives the connection back to the pool; the session stays usable and its next
   * query takes a connection and begins a new transaction. Then runs the `afterCommit` callbacks.
   */
  async commit(dataSource: string = DEFAULT_DATA_SOURCE): Promise<void> {
    const session = this.runtime.existing(dataSource);
    if (!(session instanceof LazySession)) return;
    const callbacks = await session.commit();
    await runCallbacks(callbacks, (error) => reportError('afterCommit callback failed', error));
  }

  /** Rolls back now and gives the connection back (clearing a rollback-only mark); the session stays usable. */
  async rollback(dataSource: string = DEFAULT_DATA_SOURCE): Promise<void> {
    const session = this.runtime.existing(dataSource);
    if (session instanceof LazySession) await session.rollback();
  }

  /** Rolls back what is uncommitted and releases the connection; the next `session()` starts anew. */
  async close(dataSource: string = DEFAULT_DATA_SOURCE): Promise<void> {
    const session = this.runtime.existing(dataSource);
    if (!(session instanceof LazySession)) return;
    const unit = contextStorage.getStore()?.unit;
    if (unit?.sessions.get(dataSource) !== session) {
      throw new TypeOrmContextError(messages.blockSessionClose(dataSource));
    }
    await session.close('closed'); // the next session() of this context creates a new one
  }

  /** Runs `fn` atomically; `Propagation.REQUIRED` by default (see `TransactionOptions`). */
  atomic<T>(fn: SessionCallback<T>, options?: TransactionOptions): Promise<T> {
    return this.runtime.transactions.run(options, fn);
  }

  /** Runs `callback` after the current transaction of `dataSource` commits; dropped on rollback. */
  afterCommit(callback: () => unknown, dataSource: string = DEFAULT_DATA_SOURCE): void {
    const session = this.runtime.current(dataSource);
    if (session instanceof LazySession) session.onCommitted(callback);
    else
      void Promise.resolve()
        .then(callback)
        .catch((error: unknown) => reportError('afterCommit callback failed', error));
  }
}
