import {
  type ConnectionMessage,
  connectionChannel,
  traceConnection,
} from '../diagnostics/channels.js';
import { dbTarget } from '../diagnostics/db-target.js';
import type { DataSource } from 'typeorm';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { messages } from '../errors/messages.js';
import { ModuleNotInitializedError } from '../errors/module-not-initialized.error.js';
import { replicaFor } from './connection-route.js';
import type { LazySession } from './lazy-session.js';
import type { TestRun } from './lenders.js';
import type { ReplicaPools } from './replica-pools.js';
import type { StatusClient } from './replica-status.js';
import type { SessionConnection } from './session-connection.js';
import type { FrameUnit, SessionFrame } from './session-frames.js';
import type { SessionHooks } from './session-hooks.js';
import { type BeginOptions, isConnectionLost, isSqlite, poolSize } from './transaction-dialect.js';

/**
 * Where one session's transactions take their connection (owned by its `TransactionWire`): the
 * pool, a test transaction's lender, or a replica, within `acquireTimeout`.
 */
export class ConnectionTaker {
  /**
   * The test transaction the session was born in: its unit's (the frame's where it was made),
   * else the one running then. A test transaction's work stays in it (see `Lenders`).
   */
  private readonly born?: TestRun;

  /**
   * The unit whose consistency token the transaction taken now moves on when it commits: set on
   * the primary of a data source with replicas (see `TransactionBounds.commit()`).
   */
  committer?: FrameUnit;

  constructor(
    private readonly session: LazySession,
    private readonly dataSource: DataSource,
    private readonly connection: SessionConnection,
    private readonly hooks: SessionHooks,
    /** The data source's replicas, when it has any; `request` says whether this session wants one. */
    private readonly replicas: ReplicaPools | undefined,
    private readonly request: BeginOptions,
    private readonly acquireTimeout: number,
  ) {
    if (hooks.testRun) this.born = this.ownFrame()?.routingUnit?.born ?? hooks.testRun();
  }

  /** The frame of this session's app in `frame` (the current one by default): its context there. */
  private ownFrame(frame = this.hooks.frames.current()): SessionFrame | undefined {
    return frame?.ownedBy(this.hooks.app);
  }

  /**
   * Takes a pooled connection within `acquireTimeout`; stops waiting when the session ends, and
   * gives back one that came after that.
   */
  take(): Promise<void> {
    if (!connectionChannel.hasSubscribers) return this.takeNow();
    const message: ConnectionMessage = {
      dataSource: this.session.dataSourceName,
      db: dbTarget(this.dataSource),
      acquireTimeout: this.acquireTimeout,
    };
    return traceConnection(
      message,
      () => this.takeNow(message),
      () => this.connection.onReplica,
    );
  }

  /**
   * Makes the transaction's commit note its WAL position on `unit`, where the primary can tell it
   * (asked on this connection before the first such transaction, see `askPositions()`).
   */
  private async notePositions(unit: FrameUnit | undefined): Promise<void> {
    const replicas = this.replicas!;
    if (replicas.tokens === undefined) {
      const client = this.connection.runner.databaseConnection as StatusClient;
      await replicas.askPositions(client).catch(() => undefined); // the BEGIN meets a broken one
    }
    if (replicas.tokens === true) this.committer = unit;
  }

  /** Takes it; a traced take (`message`) notes whether it asked a replica, and when it got it. */
  private async takeNow(message?: ConnectionMessage): Promise<void> {
    if (!this.dataSource.isInitialized) throw new ModuleNotInitializedError(messages.shutDown());
    const name = this.session.dataSourceName;
    const ms = this.acquireTimeout;
    const frame = this.hooks.frames.current();
    // Work born in a test transaction (its unit, or the session itself) stays in it.
    const lender = this.hooks.lender?.(name, this.born);
    // Routing follows this session's app's own frame there, not another app's frame around it.
    const own = this.ownFrame(frame);
    const replicas = replicaFor(this.replicas, lender, this.request, own?.routingUnit, name);
    if (message) message.replica = replicas !== undefined;
    // A replica must have replayed what the unit's client wrote (its consistency token).
    const need = replicas?.needOf(own?.routingUnit);
    const acquired = await this.connection
      .acquire(ms, lender, this.session, frame, replicas, need)
      .catch((error: unknown) => {
        if (!isConnectionLost(this.dataSource.options.type, error)) throw error;
        throw new ConnectionLostError(messages.connectionLost(name), { cause: error });
      });
    if (!acquired) {
      // The session ended while it waited: the wait stopped then (see `LazySession.close()`).
      const ended = this.session.endedError();
      if (ended !== undefined) throw ended;
      const held = own?.unit?.connectionsHeld(name) ?? 0;
      throw new ConnectionAcquireTimeoutError(
        lender
          ? messages.testConnectionBusy(name, ms)
          : isSqlite(this.dataSource.options.type)
            ? messages.sqliteTurnTimeout(name, ms, held)
            : messages.acquireTimeout(name, ms, poolSize(this.dataSource), held),
      );
    }
    this.committer = undefined;
    const primary = this.replicas !== undefined && !lender && !this.connection.onReplica;
    // Its commit tells the unit the WAL position to hand on (see `consistencyToken()`).
    if (primary && this.connection.statements === undefined) {
      await this.notePositions(own?.unit);
    }
    const ended = this.session.endedError();
    if (ended === undefined) {
      if (primary) own?.unit?.notePrimary(name);
      if (message) this.connection.trace(message);
      return;
    }
    this.connection.release();
    throw ended;
  }
}
