import type { DataSource, QueryRunner } from 'typeorm';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { messages } from '../errors/messages.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';
import { DEFAULT_ACQUIRE_TIMEOUT } from '../typeorm-context.options.js';
import type { Block } from './block.js';
import { ConnectionTaker } from './connection-taker.js';
import { ImplicitCommits } from './implicit-commits.js';
import type { Lane } from './lane.js';
import type { LazySession } from './lazy-session.js';
import { writeOnReplica } from './replica-writes.js';
import { Savepoints } from './savepoints.js';
import { type QueryArgs, SessionConnection, type StreamArgs } from './session-connection.js';
import type { SessionHooks } from './session-hooks.js';
import { SessionSteps } from './session-steps.js';
import { TransactionBounds } from './transaction-bounds.js';
import { TransactionFailures } from './transaction-failures.js';
import { type BeginOptions, beginStatements, isMysql } from './transaction-dialect.js';

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
  /** What failed statements and a lost connection did to the transaction. */
  readonly failures: TransactionFailures;
  private readonly connection: SessionConnection;
  /** Made at first use: most sessions run no hook, event subscriber or savepoint. */
  private madeSteps?: SessionSteps;
  private madeSavepoints?: Savepoints;
  private readonly type: string;
  private readonly request: BeginOptions;
  private readonly bounds: TransactionBounds;
  /** Set where the server may end a transaction without a COMMIT (MySQL/MariaDB, at DDL). */
  private readonly implicitCommits?: ImplicitCommits;

  constructor(
    private readonly session: LazySession,
    dataSource: DataSource,
    private readonly hooks: SessionHooks,
    begin: BeginOptions,
  ) {
    this.connection = new SessionConnection(
      dataSource,
      (error) => void this.failures.lose(error),
      hooks.waits,
    );
    this.type = dataSource.options.type;
    // The data source's own `isolationLevel` (TypeORM 1.x) applies unless the session sets one.
    const isolationLevel =
      begin.isolationLevel ??
      (dataSource.options as { isolationLevel?: IsolationLevel }).isolationLevel;
    const own = isolationLevel === begin.isolationLevel ? begin : { ...begin, isolationLevel };
    const beginSql = beginStatements(this.type, own);
    // The data source's replicas, when it has any; `begin` says whether this session wants one.
    const replicas = hooks.replicas?.(session.dataSourceName);
    this.request = replicas ? own : begin;
    this.failures = new TransactionFailures(
      this,
      this.connection,
      this.type,
      this.request,
      (error) => session.loseStreams(error),
    );
    // How long a connection may take to come: from the pool, or a pooler's answer to BEGIN.
    const acquireTimeout = hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT;
    if (isMysql(this.type)) {
      this.implicitCommits = new ImplicitCommits(
        session,
        this.connection,
        this.type,
        beginSql,
        () => this.open,
      );
    }
    const taker = new ConnectionTaker(
      session,
      dataSource,
      this.connection,
      hooks,
      replicas,
      this.request,
      acquireTimeout,
    );
    this.bounds = new TransactionBounds(
      this,
      session,
      this.connection,
      taker,
      hooks,
      this.type,
      beginSql,
      acquireTimeout,
    );
  }

  /** SAVEPOINT and its ends. */
  get savepoints(): Savepoints {
    return (this.madeSavepoints ??= new Savepoints(this, this.steps));
  }

  /** Hooks and TypeORM's transaction events, as steps of the task running them (made at first use). */
  get steps(): SessionSteps {
    return (this.madeSteps ??= new SessionSteps(this.session, this.connection, this.hooks.frames));
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
   * Stops waiting for a connection, if it waits (for the pool's, or for a pooler's answer to its
   * BEGIN): the session ended (see `ConnectionTaker`, `TransactionBounds.stopBegin()`).
   */
  stopWaiting(): void {
    this.connection.stopAcquiring();
    this.bounds.stopBegin();
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
    if (this.implicitCommits) {
      return this.implicitCommits.send(args[0], () => this.sendNow(args, lane, block));
    }
    return this.sendNow(args, lane, block);
  }

  /**
   * Sends a user's statement, as a step of the task on `lane` when anyone subscribed to TypeORM's
   * events (see `exec()`).
   */
  private sendNow(args: QueryArgs, lane: Lane, block: Block): Promise<unknown> {
    if (!this.connection.observed) return this.connection.query(args);
    return this.steps.run(lane, block, () => this.connection.query(args));
  }

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
    return this.failures.failed(block, error);
  }

  /** Takes a connection and begins a transaction: BEGIN, TypeORM's start events, `onSessionStart`. */
  begin(lane: Lane, block: Block): Promise<void> {
    return this.bounds.begin(lane, block);
  }

  /** Commits `block` (after `beforeCommit`) and gives the connection back. */
  commit(block: Block): Promise<void> {
    return this.bounds.commit(block);
  }

  /** Rolls `block` back and gives the connection back (or has the pool drop a broken one). */
  rollback(block: Block): Promise<void> {
    return this.bounds.rollback(block);
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
    const ended = inStep ? undefined : this.session.endedError();
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
      return Promise.reject(this.session.endedError() ?? this.lostError());
    }
    // A step when anyone subscribed to TypeORM's events: a subscriber may query through the
    // event's runner while it handles the statement's `beforeQuery` or `afterQuery`, and that query
    // must not queue behind the statement it is part of (as in plain TypeORM, it runs first).
    if (!this.connection.observed) return this.connection.exec(sql);
    return this.steps.run(lane, block, () => this.connection.exec(sql));
  }
}
