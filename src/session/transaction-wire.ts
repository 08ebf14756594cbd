import type { DataSource, QueryRunner } from 'typeorm';
import { contextStorage } from '../context/context-storage.js';
import { logger } from '../context/logger.js';
import { CommitOutcomeUnknownError } from '../errors/commit-outcome-unknown.error.js';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { messages } from '../errors/messages.js';
import { ModuleNotInitializedError } from '../errors/module-not-initialized.error.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { TransactionNotAllowedError } from '../errors/transaction-not-allowed.error.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';
import { DEFAULT_ACQUIRE_TIMEOUT } from '../typeorm-context.options.js';
import type { Block } from './block.js';
import type { Lane } from './lane.js';
import type { TestRun } from './lenders.js';
import type { LazySession } from './lazy-session.js';
import { replicaFor } from './connection-route.js';
import type { ReplicaPools } from './replica-pools.js';
import { replicaRefusal, writeOnReplica } from './replica-writes.js';
import { Savepoints } from './savepoints.js';
import { type QueryArgs, SessionConnection, type StreamArgs } from './session-connection.js';
import type { SessionHooks } from './session-hooks.js';
import { SessionSteps } from './session-steps.js';
import {
  abortsTransaction,
  type BeginOptions,
  beginStatements,
  endedTransaction,
  isConnectionLost,
  isPostgres,
  poolSize,
  rolledBackByServer,
} from './transaction-dialect.js';

/** MySQL/MariaDB `LOCK TABLES`: refused in a session (see `messages.lockTables`). */
const LOCK_TABLES = /^\s*lock\s+tables?\s/i;
/** Statements that may commit implicitly on MySQL/MariaDB (DDL and a few others), even if they fail. */
const MAY_COMMIT =
  /^\s*(?:create|alter|drop|truncate|rename|unlock|grant|revoke|analyze|optimize|repair|flush|install|uninstall|cache|load\s+index)\s/i;

/**
 * The statements of one session's transactions, in the order TypeORM itself sends them: take a
 * connection, BEGIN, COMMIT or ROLLBACK, give the connection back (savepoints: `Savepoints`),
 * each inside TypeORM's transaction events, plus the module hooks. `LazySession` decides when
 * (each call runs in a task of one of its lanes); this knows how, and keeps what the server said:
 * whether a transaction is open, and what a failed statement did to it.
 */
export class TransactionWire {
  /** True while a transaction is open on the server. */
  open = false;
  /** The transaction open on the held connection (until its end is known). */
  private opened?: Block;
  private readonly connection: SessionConnection;
  /** Made at first use: most sessions run no hook, event subscriber or savepoint. */
  private madeSteps?: SessionSteps;
  private madeSavepoints?: Savepoints;
  private readonly type: string;
  private readonly beginSql: readonly string[];
  /** The data source's replicas, when it has any; `begin` says whether this session wants one. */
  private readonly replicas?: ReplicaPools;
  private readonly request: BeginOptions;
  /** How long a connection may take to come: from the pool, or a pooler's answer to BEGIN. */
  private readonly acquireTimeout: number;
  /**
   * The test transaction the session was born in: its unit's (the frame's where it was made),
   * else the one running then. A test transaction's work stays in it (see `Lenders`).
   */
  private readonly born?: TestRun;
  /** Whether the server may end a transaction without a COMMIT (MySQL/MariaDB, at DDL). */
  private readonly endsOnItsOwn: boolean;

  constructor(
    private readonly session: LazySession,
    private readonly dataSource: DataSource,
    private readonly hooks: SessionHooks,
    begin: BeginOptions,
    /** The error of a use after the session ended, if it ended. */
    private readonly ended: () => Error | undefined,
  ) {
    this.connection = new SessionConnection(
      dataSource,
      (error) => void this.lose(error),
      hooks.waits,
    );
    this.type = dataSource.options.type;
    // The data source's own `isolationLevel` (TypeORM 1.x) applies unless the session sets one.
    const isolationLevel =
      begin.isolationLevel ??
      (dataSource.options as { isolationLevel?: IsolationLevel }).isolationLevel;
    const own = isolationLevel === begin.isolationLevel ? begin : { ...begin, isolationLevel };
    this.beginSql = beginStatements(this.type, own);
    this.replicas = hooks.replicas?.(session.dataSourceName);
    this.request = this.replicas ? own : begin;
    this.acquireTimeout = hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT;
    this.endsOnItsOwn = !isPostgres(this.type);
    if (hooks.testRun) {
      const frame = contextStorage.getStore();
      const own = hooks.app === undefined ? frame : frame?.ownedBy(hooks.app);
      this.born = own?.routingUnit?.born ?? hooks.testRun();
    }
  }

  /** SAVEPOINT and its ends. */
  get savepoints(): Savepoints {
    return (this.madeSavepoints ??= new Savepoints(this, this.steps));
  }

  /** Hooks and TypeORM's transaction events, as steps of the task running them. */
  private get steps(): SessionSteps {
    return (this.madeSteps ??= new SessionSteps(this.session, this.connection));
  }

  /** The session's QueryRunner. */
  get runner(): QueryRunner & { transactionDepth: number } {
    return this.connection.runner;
  }

  /** The name of the savepoint of a NESTED block at `depth` (TypeORM's, unless a test lends the connection). */
  savepointName(depth: number): string {
    return `${this.connection.statements?.savepoint ?? 'typeorm'}_${depth}`;
  }

  /** The data source's name. */
  get name(): string {
    return this.session.dataSourceName;
  }

  /** Whether a pooled connection is held right now. */
  get held(): boolean {
    return this.connection.held;
  }

  /** The driver's connection the runner uses, while one is held. */
  get driverConnection(): unknown {
    return this.connection.runner.databaseConnection;
  }

  /** Whether TypeORM's own `query()` is starting to send a statement right now. */
  get sending(): boolean {
    return this.connection.sending;
  }

  /** The error of a statement whose connection is gone. */
  lostError(): Error {
    return new ConnectionLostError(messages.connectionLost(this.name));
  }

  /** Whether a connection is on its way from the pool. */
  get acquiring(): boolean {
    return this.connection.acquiring;
  }

  /**
   * A user's statement in `block`, sent by a task on `lane`; refused once the session ended
   * (unless a hook or subscriber sends it in a step of the ending itself) or the server rolled
   * the transaction back.
   */
  send(args: QueryArgs, block: Block, lane: Lane): Promise<unknown> {
    const refusal =
      this.refusal(block, lane.step) ??
      (this.connection.onReplica
        ? writeOnReplica(args[0], this.name, this.request.label)
        : undefined);
    if (refusal) return Promise.reject(refusal);
    if (!this.endsOnItsOwn) return this.asStep(lane, block, () => this.connection.query(args));
    const sql = args[0];
    if (LOCK_TABLES.test(sql)) {
      return Promise.reject(new TransactionNotAllowedError(messages.lockTables(this.name)));
    }
    const sent = this.asStep(lane, block, () => this.connection.query(args));
    // A DDL statement commits before it runs: even when it then fails, the transaction is over.
    return MAY_COMMIT.test(sql)
      ? sent.then(this.beginAgainIfEnded, this.beginAgainAfterFailure)
      : sent.then(this.beginAgainIfEnded);
  }

  /**
   * MySQL/MariaDB commit the open transaction implicitly at DDL, `TRUNCATE` (`repository.clear()`)
   * and a few other statements, then go on in autocommit mode. The work before that statement
   * stays committed (a warning says so); the session begins a new transaction at once on the same
   * connection, so that what comes after it is still committed or rolled back as one.
   */
  private readonly beginAgainIfEnded = async (result: unknown): Promise<unknown> => {
    if (!this.open || this.connection.statements || !endedTransaction(this.type, result)) {
      return result;
    }
    logger.warn(messages.implicitCommit(this.name));
    this.session.commits++;
    // Straight on the connection: the statement that ended the transaction still holds its lane.
    for (const sql of this.beginSql) await this.connection.exec(sql);
    return result;
  };

  /**
   * After a statement that may commit implicitly failed: asks the server (`DO 0`, whose answer
   * carries the transaction status) whether the transaction is still open, and begins a new one
   * if it is not. Rethrows the statement's error.
   */
  private readonly beginAgainAfterFailure = async (error: unknown): Promise<never> => {
    if (this.open && this.connection.held && !this.connection.statements) {
      try {
        await this.beginAgainIfEnded(await this.connection.exec('DO 0'));
      } catch {
        // The connection failed too: the statement's own error says what happened.
      }
    }
    throw error;
  };

  /** A user's stream in `block`, refused like a statement. */
  stream(args: StreamArgs, block: Block): ReturnType<QueryRunner['stream']> {
    const refusal = this.refusal(block);
    return refusal ? Promise.reject(refusal) : this.connection.stream(args);
  }

  /**
   * Notes what a failed statement of `block` did to the transaction on the server; returns the
   * error the statement's caller gets instead, when there is a clearer one (a lost connection).
   */
  failed(block: Block, error: unknown): Error | undefined {
    if (isConnectionLost(this.type, error)) {
      if (this.open || this.connection.held) return this.lose(error);
      // The driver's 'error' event can arrive first (PgBouncer forwards the server's FATAL): the
      // loss is already known, and the statement gets the same error as the rest.
      const known = block.root.broken;
      if (known instanceof ConnectionLostError) return known;
    }
    const clearer = this.connection.onReplica
      ? replicaRefusal(error, this.name, this.request.label)
      : undefined;
    if (!this.open || !abortsTransaction(this.type, error)) return clearer;
    if (rolledBackByServer(this.type, error)) {
      block.root.broken ??= new TransactionAbortedError(
        messages.transactionAborted(this.name, false),
        {
          cause: error,
        },
      );
    } else block.aborted ??= error;
    return clearer;
  }

  /** Takes a connection and begins a transaction: BEGIN, TypeORM's start events, `onSessionStart`. */
  async begin(lane: Lane, block: Block): Promise<void> {
    await this.take();
    let waited = false;
    try {
      if (this.connection.observed) await this.steps.event(lane, block, 'BeforeTransactionStart');
      // A pooler in transaction mode (PgBouncer) hands out a server connection at the first
      // statement: a BEGIN it queues is a wait for a connection, bounded like the pool's.
      const stop = this.connection.statements
        ? undefined
        : this.hooks.waits.deadline(this.acquireTimeout, () => {
            waited = true;
            void this.connection.destroy(new Error('BEGIN got no answer within acquireTimeout'));
          });
      try {
        for (const sql of this.connection.statements?.begin ?? this.beginSql) {
          await this.exec(sql, lane, block);
        }
      } finally {
        stop?.();
      }
      this.open = true;
      this.opened = block;
      this.runner.transactionDepth = 1;
      if (this.connection.observed) await this.steps.event(lane, block, 'AfterTransactionStart');
      const hook = this.hooks.onSessionStart;
      if (hook) await this.steps.run(lane, block, () => hook(this.runner.manager, this.name));
    } catch (error) {
      await this.abandon(error, lane, block);
      if (!waited && isConnectionLost(this.type, error)) {
        throw new ConnectionLostError(messages.connectionLost(this.name), { cause: error });
      }
      if (!waited) throw error;
      throw new ConnectionAcquireTimeoutError(
        messages.beginTimeout(this.name, this.acquireTimeout),
        {
          cause: error,
        },
      );
    }
  }

  /** Commits `block` (after `beforeCommit`) and gives the connection back. */
  async commit(block: Block): Promise<void> {
    if (!this.open && block.broken === undefined) return;
    const lane = this.session.lane;
    const hook = this.hooks.beforeCommit;
    if (hook && block.broken === undefined) {
      try {
        await this.steps.run(lane, block, () => hook(this.runner.manager, this.name));
      } catch (error) {
        await this.rollback(block).catch(this.reportRollback);
        throw error;
      }
    }
    if (block.broken !== undefined) {
      // MySQL/MariaDB rolled back on a deadlock and went on in autocommit mode: the ROLLBACK ends
      // the transaction here too, so the next statement begins a new one on a pooled connection.
      if (this.open) await this.rollback(block).catch(this.reportRollback);
      throw block.broken;
    }
    if (block.aborted !== undefined || this.connection.failedOnServer) {
      await this.rollback(block).catch(this.reportRollback);
      throw new TransactionAbortedError(messages.transactionAborted(this.name, false), {
        cause: block.aborted,
      });
    }
    let sent = false;
    try {
      if (this.connection.observed) await this.steps.event(lane, block, 'BeforeTransactionCommit');
      sent = true;
      await this.exec(this.connection.statements?.commit ?? 'COMMIT', lane, block);
    } catch (error) {
      if (sent && isConnectionLost(this.type, error)) {
        this.lose(error);
        throw new CommitOutcomeUnknownError(messages.commitOutcomeUnknown(this.name), {
          cause: error,
        });
      }
      await this.rollback(block).catch(() => undefined);
      throw error;
    }
    this.open = false;
    try {
      if (this.connection.observed) await this.steps.event(lane, block, 'AfterTransactionCommit');
    } catch (error) {
      this.report(
        `An afterTransactionCommit subscriber of '${this.name}' failed (the commit stands)`,
        error,
      );
    } finally {
      this.connection.release();
    }
  }

  /** Rolls `block` back and gives the connection back (or has the pool drop a broken one). */
  async rollback(block: Block): Promise<void> {
    if (!this.open) return;
    const lane = this.session.lane;
    try {
      if (this.connection.observed)
        await this.steps.event(lane, block, 'BeforeTransactionRollback');
      await this.exec(this.connection.statements?.rollback ?? 'ROLLBACK', lane, block);
    } catch (error) {
      const dropped = !this.connection.held; // by the driver's 'error' event, meanwhile
      this.open = false;
      await this.connection.destroy(error);
      // The server rolled back as it dropped the connection: the rollback happened.
      if (dropped || isConnectionLost(this.type, error)) return;
      throw error;
    }
    this.open = false;
    try {
      if (this.connection.observed) await this.steps.event(lane, block, 'AfterTransactionRollback');
    } finally {
      this.connection.release();
    }
  }

  /** Drops the connection at once (the server rolls back); used by a timeout. */
  drop(error: Error): void {
    this.open = false;
    void this.connection.destroy(error);
  }

  /** Reports an error that must not change the outcome. */
  report(message: string, error: unknown): void {
    this.hooks.reportError(message, error);
  }

  /** Reports a failed rollback after another failure (which is the one the caller gets). */
  readonly reportRollback = (error: unknown): void =>
    this.report(`Rollback of '${this.name}' failed`, error);

  /** Why a statement of `block` must not be sent, if anything forbids it. */
  refusal(block: Block, inStep = false): Error | undefined {
    const ended = inStep ? undefined : this.ended();
    if (ended !== undefined) return ended;
    return block.root.broken;
  }

  /**
   * Sends one of the session's own statements on the held connection, from a task on `lane`
   * (a subscriber's statements in its query events join `block`).
   */
  exec(sql: string, lane: Lane, block: Block): Promise<unknown> {
    if (!this.connection.held) {
      // Dropped by the driver's 'error' event (a server connection killed as the session begins).
      return Promise.reject(this.ended() ?? this.lostError());
    }
    return this.asStep(lane, block, () => this.connection.exec(sql));
  }

  /**
   * Sends a statement as a step of the task on `lane` when anyone subscribed to TypeORM's events:
   * a subscriber may query through the event's runner while it handles the statement's
   * `beforeQuery` or `afterQuery`, and that query must not queue behind the statement it is part
   * of (as in plain TypeORM, it runs before the statement goes on).
   */
  private asStep<T>(lane: Lane, block: Block, send: () => Promise<T>): Promise<T> {
    return this.connection.observed ? this.steps.run(lane, block, send) : send();
  }

  /** Takes a pooled connection within `acquireTimeout`; gives it back if the session ended meanwhile. */
  private async take(): Promise<void> {
    if (!this.dataSource.isInitialized) throw new ModuleNotInitializedError(messages.shutDown());
    const ms = this.acquireTimeout;
    const frame = contextStorage.getStore();
    // Work born in a test transaction (its unit, or the session itself) stays in it.
    const lender = this.hooks.lender?.(this.name, this.born);
    // Routing follows this session's app's own frame there, not another app's frame around it.
    const app = this.hooks.app;
    const own = app === undefined ? frame : frame?.ownedBy(app);
    const replicas = replicaFor(this.replicas, lender, this.request, own?.routingUnit, this.name);
    const acquired = await this.connection
      .acquire(ms, lender, this.session, frame, replicas)
      .catch((error: unknown) => {
        if (!isConnectionLost(this.type, error)) throw error;
        throw new ConnectionLostError(messages.connectionLost(this.name), { cause: error });
      });
    if (!acquired) {
      const held = own?.unit?.connectionsHeld(this.name) ?? 0;
      throw new ConnectionAcquireTimeoutError(
        lender
          ? messages.testConnectionBusy(this.name, ms)
          : messages.acquireTimeout(this.name, ms, poolSize(this.dataSource), held),
      );
    }
    const ended = this.ended();
    if (ended === undefined) {
      if (this.replicas && !lender && !this.connection.onReplica) own?.unit?.notePrimary(this.name);
      return;
    }
    this.connection.release();
    throw ended;
  }

  /** After a failed BEGIN or start hook: a quiet ROLLBACK, or the connection dropped. */
  private async abandon(error: unknown, lane: Lane, block: Block): Promise<void> {
    const open = this.open;
    this.open = false;
    if (open) {
      try {
        await this.exec(this.connection.statements?.rollback ?? 'ROLLBACK', lane, block);
        this.connection.release();
        return;
      } catch {
        // the connection broke: the pool drops it below
      }
    }
    await this.connection.destroy(error);
  }

  /**
   * The connection broke (a statement failed for it, or the driver said so): the transaction it
   * carried is gone. Its later statements and its commit fail with the `ConnectionLostError`.
   */
  private lose(cause: unknown): ConnectionLostError {
    const lost = new ConnectionLostError(messages.connectionLost(this.name), { cause });
    // The transaction the connection carried (the session may already be on to the next one:
    // a COMMIT's answer and the server's goodbye can arrive in one read).
    if (this.open) this.opened!.broken ??= lost;
    this.open = false;
    void this.connection.destroy(cause);
    return lost;
  }
}
