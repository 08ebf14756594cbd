import { callbackChannel, traceCallback } from '../diagnostics/channels.js';
import { CommitOutcomeUnknownError } from '../errors/commit-outcome-unknown.error.js';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { messages } from '../errors/messages.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import type { Block } from './block.js';
import type { ConnectionTaker } from './connection-taker.js';
import type { Waiter } from './connection-wait.js';
import type { Lane } from './lane.js';
import type { LazySession } from './lazy-session.js';
import type { SessionConnection } from './session-connection.js';
import type { SessionHooks } from './session-hooks.js';
import { isConnectionLost } from './transaction-dialect.js';
import { COMMIT_WITH_POSITION, committedPosition } from './wal-position.js';

/**
 * How long (ms) a BEGIN sent for a session that ended since may still take before its connection
 * is dropped: a server answers well within it, a pooler that queues the BEGIN does not.
 */
const ENDED_BEGIN_GRACE = 250;
import type { TransactionWire } from './transaction-wire.js';

/**
 * BEGIN, COMMIT and ROLLBACK of one session's transactions (owned by its `TransactionWire`, which
 * keeps whether one is open): each inside TypeORM's transaction events, with the module hooks
 * `onSessionStart` and `beforeCommit`, taking the connection before and giving it back after.
 */
export class TransactionBounds {
  constructor(
    private readonly wire: TransactionWire,
    private readonly session: LazySession,
    private readonly connection: SessionConnection,
    private readonly taker: ConnectionTaker,
    private readonly hooks: SessionHooks,
    private readonly type: string,
    private readonly beginSql: readonly string[],
    /** How long a pooler may take to answer BEGIN. */
    private readonly acquireTimeout: number,
  ) {}

  /** The deadline of a BEGIN sent and not answered yet (a pooler may queue it, see `begin()`). */
  private beginWait?: Waiter;

  /**
   * Gives a BEGIN still waiting for its answer `ENDED_BEGIN_GRACE` ms more at most, then cuts it
   * as its deadline would: the session ended and wants no server connection (behind PgBouncer
   * the BEGIN is where it waits for one). A server that answers at once keeps its connection.
   */
  stopBegin(): void {
    if (this.beginWait) this.hooks.waits.hasten(this.beginWait, ENDED_BEGIN_GRACE);
  }

  /** Takes a connection and begins a transaction: BEGIN, TypeORM's start events, `onSessionStart`. */
  async begin(lane: Lane, block: Block): Promise<void> {
    await this.taker.take();
    let waited = false;
    try {
      if (this.connection.observed)
        await this.wire.steps.event(lane, block, 'BeforeTransactionStart');
      // A pooler in transaction mode (PgBouncer) hands out a server connection at the first
      // statement: a BEGIN it queues is a wait for a connection, bounded like the pool's, and
      // stopped like it when the session ends (`stopBegin()`).
      const wait = this.connection.statements
        ? undefined
        : this.hooks.waits.deadline(this.acquireTimeout, () => {
            waited = true;
            void this.connection.destroy(new Error('BEGIN got no answer within acquireTimeout'));
          });
      this.beginWait = wait;
      try {
        for (const sql of this.connection.statements?.begin ?? this.beginSql) {
          await this.wire.exec(sql, lane, block);
        }
      } finally {
        if (wait) {
          this.beginWait = undefined;
          this.hooks.waits.cancel(wait);
        }
      }
      this.wire.open = true;
      this.wire.failures.opened = block;
      this.wire.runner.transactionDepth = 1;
      if (this.connection.observed)
        await this.wire.steps.event(lane, block, 'AfterTransactionStart');
      const hook = this.hooks.onSessionStart;
      if (hook) {
        const run = () =>
          this.wire.steps.run(lane, block, () => hook(this.wire.runner.manager, this.wire.name));
        if (!callbackChannel.hasSubscribers) await run();
        else await traceCallback({ name: 'onSessionStart', dataSource: this.wire.name }, run);
      }
    } catch (error) {
      await this.abandon(error, lane, block);
      if (!waited && isConnectionLost(this.type, error)) {
        throw new ConnectionLostError(messages.connectionLost(this.wire.name), { cause: error });
      }
      if (!waited) throw error;
      // Cut because the session ended while it waited (`stopBegin()`), or timed out.
      const ended = this.session.endedError();
      if (ended !== undefined) throw ended;
      throw new ConnectionAcquireTimeoutError(
        messages.beginTimeout(this.wire.name, this.acquireTimeout),
        {
          cause: error,
        },
      );
    }
  }

  /** Commits `block` (after `beforeCommit`) and gives the connection back. */
  async commit(block: Block): Promise<void> {
    if (!this.wire.open && block.broken === undefined) return;
    const lane = this.session.lane;
    const hook = this.hooks.beforeCommit;
    if (hook && block.broken === undefined) {
      try {
        const run = () =>
          this.wire.steps.run(lane, block, () => hook(this.wire.runner.manager, this.wire.name));
        if (!callbackChannel.hasSubscribers) await run();
        else await traceCallback({ name: 'beforeCommit', dataSource: this.wire.name }, run);
      } catch (error) {
        await this.rollback(block).catch(this.wire.reportRollback);
        throw error;
      }
    }
    if (block.broken !== undefined) {
      // MySQL/MariaDB rolled back on a deadlock and went on in autocommit mode: the ROLLBACK ends
      // the transaction here too, so the next statement begins a new one on a pooled connection.
      if (this.wire.open) await this.rollback(block).catch(this.wire.reportRollback);
      throw block.broken;
    }
    if (block.aborted !== undefined || this.connection.failedOnServer) {
      await this.rollback(block).catch(this.wire.reportRollback);
      throw new TransactionAbortedError(messages.transactionAborted(this.wire.name, false), {
        cause: block.aborted,
      });
    }
    let sent = false;
    try {
      if (this.connection.observed)
        await this.wire.steps.event(lane, block, 'BeforeTransactionCommit');
      sent = true;
      const committer = this.taker.committer;
      if (committer === undefined) {
        await this.wire.exec(this.connection.statements?.commit ?? 'COMMIT', lane, block);
      } else {
        const send = () => this.wire.exec(COMMIT_WITH_POSITION, lane, block);
        const position = committedPosition(
          await this.connection.capture(COMMIT_WITH_POSITION, send),
        );
        if (position !== undefined) committer.notePosition(this.wire.name, position);
      }
    } catch (error) {
      if (sent && isConnectionLost(this.type, error)) {
        this.wire.failures.lose(error);
        throw new CommitOutcomeUnknownError(messages.commitOutcomeUnknown(this.wire.name), {
          cause: error,
        });
      }
      await this.rollback(block).catch(() => undefined);
      throw error;
    }
    this.wire.open = false;
    try {
      if (this.connection.observed)
        await this.wire.steps.event(lane, block, 'AfterTransactionCommit');
    } catch (error) {
      this.wire.report(
        `An afterTransactionCommit subscriber of '${this.wire.name}' failed (the commit stands)`,
        error,
      );
    } finally {
      this.connection.release();
    }
  }

  /** Rolls `block` back and gives the connection back (or has the pool drop a broken one). */
  async rollback(block: Block): Promise<void> {
    if (!this.wire.open) return;
    const lane = this.session.lane;
    try {
      if (this.connection.observed)
        await this.wire.steps.event(lane, block, 'BeforeTransactionRollback');
      await this.wire.exec(this.connection.statements?.rollback ?? 'ROLLBACK', lane, block);
    } catch (error) {
      const dropped = !this.connection.held; // by the driver's 'error' event, meanwhile
      this.wire.open = false;
      await this.connection.destroy(error);
      // The server rolled back as it dropped the connection: the rollback happened.
      if (dropped || isConnectionLost(this.type, error)) return;
      throw error;
    }
    this.wire.open = false;
    try {
      if (this.connection.observed)
        await this.wire.steps.event(lane, block, 'AfterTransactionRollback');
    } finally {
      this.connection.release();
    }
  }

  /** After a failed BEGIN or start hook: a quiet ROLLBACK, or the connection dropped. */
  async abandon(error: unknown, lane: Lane, block: Block): Promise<void> {
    const open = this.wire.open;
    this.wire.open = false;
    if (open) {
      try {
        await this.wire.exec(this.connection.statements?.rollback ?? 'ROLLBACK', lane, block);
        this.connection.release();
        return;
      } catch {
        // the connection broke: the pool drops it below
      }
    }
    await this.connection.destroy(error);
  }
}
