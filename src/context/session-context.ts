import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { NoSessionContextError } from '../errors/no-session-context.error.js';
import { TypeOrmContextError } from '../errors/typeorm-context.error.js';
import { messages } from '../errors/messages.js';
import type {
  SessionCallback,
  TransactionOptions,
} from '../interfaces/transaction-options.interface.js';
import { DEFAULT_DATA_SOURCE } from '../typeorm-context.options.js';
import { LazySession } from '../session/lazy-session.js';
import { type CompletionStatus, runCallbacks } from '../session/transaction-callbacks.js';
import { decodeToken, encodeToken } from './consistency-token.js';
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
    const unit = this.runtime.frame()?.unit;
    return unit !== undefined && !unit.ended;
  }

  /**
   * The id of the unit of work (request, message, GraphQL operation, job or `runInNewContext()`)
   * the code runs in, or whose after-completion callback it runs: the one the module's log lines
   * carry (`[unit 12] …`), unique in the process. A REQUIRES_NEW block has its unit's id. Throws
   * `NoSessionContextError` outside any unit of work.
   */
  unitId(): number {
    const unit = this.runtime.frame()?.routingUnit;
    if (unit === undefined) throw new NoSessionContextError(messages.noUnitId());
    return unit.id;
  }

  /**
   * The consistency token of the unit of work the code runs in: the primary WAL positions its
   * commits reached (and what it carried in), by data source with replicas, as one string
   * (`default=16/B374D848`). Hand it to the client, or to the next unit of the same flow
   * (`consistentWith()`, `runInNewContext(fn, { consistencyToken })`): that unit's read-only
   * transactions then run only on replicas that replayed it. Undefined when the unit wrote nothing
   * on a replicated data source and carried nothing in. Read it after the commit (in
   * `afterCommit`, or after `sessionContext.commit()`); the `consistency.header` / `cookie`
   * options send it on HTTP responses for you. Throws `NoSessionContextError` outside any unit of work.
   */
  consistencyToken(): string | undefined {
    const unit = this.runtime.frame()?.routingUnit;
    if (unit === undefined)
      throw new NoSessionContextError(messages.noUnitToken('consistencyToken'));
    return encodeToken(unit.allPositions());
  }

  /**
   * Makes the read-only transactions of the unit of work the code runs in see at least what
   * `token` names (a `consistencyToken()` of an earlier unit: a client's, a message's): from now
   * on they run only on replicas that replayed it, or on the primary. `undefined` changes nothing;
   * a string that is not a token throws `InvalidOptionError`, and so does using it outside any
   * unit of work (`NoSessionContextError`).
   */
  consistentWith(token: string | undefined): void {
    const unit = this.runtime.frame()?.routingUnit;
    if (unit === undefined) throw new NoSessionContextError(messages.noUnitToken('consistentWith'));
    if (token === undefined) return;
    const positions = decodeToken(token);
    if (positions === undefined)
      throw new InvalidOptionError(messages.invalidConsistencyToken(token));
    unit.carry(positions);
  }

  /**
   * Commits now and gives the connection back to the pool; the session stays usable and its next
   * query takes a connection and begins a new transaction. Then runs the `afterCommit` callbacks.
   */
  async commit(dataSource: string = DEFAULT_DATA_SOURCE): Promise<void> {
    const session = this.runtime.existing(dataSource);
    if (session instanceof LazySession) await session.dueCallbacks.around(() => session.commit());
  }

  /** Rolls back now and gives the connection back (clearing a rollback-only mark); the session stays usable. */
  async rollback(dataSource: string = DEFAULT_DATA_SOURCE): Promise<void> {
    const session = this.runtime.existing(dataSource);
    if (session instanceof LazySession) await session.dueCallbacks.around(() => session.rollback());
  }

  /** Rolls back what is uncommitted and releases the connection; the next `session()` starts anew. */
  async close(dataSource: string = DEFAULT_DATA_SOURCE): Promise<void> {
    const session = this.runtime.existing(dataSource);
    if (!(session instanceof LazySession)) return;
    const unit = this.runtime.frame()?.unit;
    if (unit?.sessions.get(dataSource) !== session) {
      throw new TypeOrmContextError(messages.blockSessionClose(dataSource));
    }
    // The next session() of this context creates a new one.
    await session.dueCallbacks.around(() => session.close('closed'));
  }

  /** Runs `fn` atomically; `Propagation.REQUIRED` by default (see `TransactionOptions`). */
  atomic<T>(fn: SessionCallback<T>, options?: TransactionOptions): Promise<T> {
    return this.runtime.transactions.run(options, fn, undefined, 'sessionContext.atomic()');
  }

  /**
   * Runs `callback` once the transaction current here has committed and its connection is back in
   * the pool; dropped if it rolls back. Where no transaction is current (`NOT_SUPPORTED`), soon.
   */
  afterCommit(callback: () => unknown, dataSource: string = DEFAULT_DATA_SOURCE): void {
    this.register('commit', callback, dataSource);
  }

  /**
   * Runs `callback` once the transaction current here has rolled back (for any reason: an error,
   * rollback-only, a failed COMMIT) and its connection is back in the pool; inside a NESTED block,
   * also when that block rolls back to its savepoint (then at the end of the outer transaction).
   */
  afterRollback(callback: () => unknown, dataSource: string = DEFAULT_DATA_SOURCE): void {
    this.register('rollback', callback, dataSource);
  }

  /** Runs `callback` with `'committed'` or `'rolled back'` once the transaction current here ended. */
  afterCompletion(
    callback: (status: CompletionStatus) => unknown,
    dataSource: string = DEFAULT_DATA_SOURCE,
  ): void {
    this.register('always', callback, dataSource);
  }

  private register(
    on: 'commit' | 'rollback' | 'always',
    callback: (status: CompletionStatus) => unknown,
    dataSource: string,
  ): void {
    const session = this.runtime.current(dataSource);
    if (session instanceof LazySession) return session.addCallback(on, callback);
    // No transaction here: each statement commits on its own, nothing can roll back.
    if (on === 'rollback') return;
    const name = on === 'commit' ? 'afterCommit' : 'afterCompletion';
    const follows = this.runtime.frame()?.unit;
    const run = () =>
      runCallbacks([{ name, run: () => callback('committed'), follows }], this.runtime.hooks);
    Promise.resolve()
      .then(run)
      .catch(() => undefined); // reported by runCallbacks
  }
}
