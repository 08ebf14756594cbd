import type { Readable } from 'node:stream';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { UnitMessage } from '../diagnostics/channels.js';
import { messages } from '../errors/messages.js';
import { SessionBusyError } from '../errors/session-busy.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import { Block } from './block.js';
import { DueCallbacks } from './due-callbacks.js';
import { Lane } from './lane.js';
import type { QueryArgs, StreamArgs } from './session-connection.js';
import { SessionEnd } from './session-end.js';
import type { EndReason, SessionHooks, SessionOwner } from './session-hooks.js';
import { SessionCommits } from './session-commits.js';
import { installRunner } from './session-runner.js';
import { SessionWork } from './session-work.js';
import { SessionStreams } from './session-streams.js';
import type { CompletionStatus } from './transaction-callbacks.js';
import type { BeginOptions } from './transaction-dialect.js';
import { TransactionWire } from './transaction-wire.js';

const RESOLVED = Promise.resolve();

/**
 * One session: an `EntityManager` on its own QueryRunner that takes no connection and sends no
 * BEGIN until its first statement, and gives the connection back when its transaction ends.
 * Everything it sends takes a turn on its lane (see `Lane`), so statements, streams, savepoint
 * blocks and the end of a transaction never overlap; inside a NESTED block or a hook, work goes
 * to that block's own lane. Only this instance's runner and manager are changed (`installRunner`).
 *
 * Owns its transactions: when they begin and end (`TransactionWire` sends the statements). Its
 * owner (the context's `UnitOfWork`, a REQUIRES_NEW block, a factory `Session`) decides when the
 * session itself ends.
 */
export class LazySession {
  /** The `EntityManager` users query through. */
  readonly manager: EntityManager;
  /** The session's own lane: its transaction's statements, blocks and end take turns on it. */
  readonly lane = new Lane();
  private readonly wire: TransactionWire;
  private readonly streams = new SessionStreams();
  private readonly work: SessionWork;
  /**
   * The first error a stream of the current transaction (not of a savepoint or hook in it) failed
   * with: a response may be reading it. Cleared when that transaction ends.
   */
  streamFailure?: Error;
  /**
   * The traced unit of work whose session this is (set by the unit while its `unit` channel message
   * exists): its statements run in the tracer's scope of that unit (see `diagnostics/scope.ts`).
   */
  unitTrace?: UnitMessage;
  /** How many of its transactions committed: by a COMMIT, or implicitly (MySQL/MariaDB DDL). */
  commits = 0;
  /** The transaction work joins now, begun on the server or not yet. */
  private current = new Block();
  private readonly end: SessionEnd;
  private closing?: Promise<void>;
  /** Callbacks of its transactions that ended, to run once their connection is back in the pool. */
  readonly dueCallbacks: DueCallbacks;
  private readonly ends: SessionCommits;

  constructor(
    /** Name of the data source this session belongs to. */
    readonly dataSourceName: string,
    /** The data source this session belongs to. */
    readonly dataSource: DataSource,
    private readonly hooks: SessionHooks,
    owner: SessionOwner,
    begin: BeginOptions = {},
  ) {
    this.end = new SessionEnd(dataSourceName, owner);
    this.wire = new TransactionWire(this, dataSource, hooks, begin);
    this.manager = this.wire.runner.manager;
    this.dueCallbacks = new DueCallbacks(hooks);
    this.work = new SessionWork(this, this.wire, this.streams, hooks.frames);
    this.ends = new SessionCommits(this, this.wire, this.dueCallbacks);
    installRunner(this, this.wire, hooks.app);
  }

  /** The transaction work joins now, begun on the server or not yet (for `SessionWork`). */
  get currentBlock(): Block {
    return this.current;
  }

  /** The error of a use after the session ended, if it ended. */
  endedError(): Error | undefined {
    return this.end.error();
  }

  /** The app (its runtime) whose session this is. */
  get app(): object {
    return this.hooks.app;
  }

  /** Whether the session holds a pooled connection right now. */
  get connected(): boolean {
    return this.wire.held;
  }

  /** Whether nothing is open, queued, waiting for a commit or known to be lost. */
  get settled(): boolean {
    const block = this.current;
    return (
      !this.wire.open &&
      !this.lane.busy &&
      !block.rollbackOnly &&
      !block.callbacks.pending &&
      block.broken === undefined
    );
  }

  /** Whether a stream of the session is open. */
  get streaming(): boolean {
    return this.streams.size > 0;
  }

  /** The streams of the session that are open now. */
  get openStreams(): Readable[] {
    return this.streams.list();
  }

  /** Whether the session ended: it runs nothing more. */
  get isEnded(): boolean {
    return this.end.ended;
  }

  /** Whether its owner closed or released it, so that its context replaces it on next use. */
  get replaceable(): boolean {
    return this.end.byOwner;
  }

  /** Runs a statement after the work queued before it, beginning the transaction if needed. */
  query(args: QueryArgs): Promise<unknown> {
    return this.work.query(args);
  }

  /**
   * Runs `work` on the lane of the code calling, once the transaction is open there (the
   * session's own lane begins it first), with that lane and the block work joins on it.
   */
  inTransaction<T>(work: (lane: Lane, block: Block) => Promise<T>): Promise<T> {
    return this.work.inTransaction(work);
  }

  /** Opens a stream that holds its lane until it closes, and dies with its block or context. */
  stream(args: StreamArgs): ReturnType<QueryRunner['stream']> {
    return this.work.stream(args);
  }

  /** Runs `fn` in a SAVEPOINT of the transaction current here, after the work queued before it. */
  nested<T>(fn: (manager: EntityManager) => Promise<T> | T): Promise<T> {
    return this.work.nested(fn);
  }

  /**
   * Registers a callback for the transaction (or savepoint) current here: `commit` runs after it
   * commits, `rollback` after it rolls back, `always` after either, with the status.
   */
  addCallback(
    on: 'commit' | 'rollback' | 'always',
    callback: (status: CompletionStatus) => unknown,
  ): void {
    this.blockHere().callbacks.add(on, callback, this.hooks.frames.current()?.unit);
  }

  /** Marks the transaction (or savepoint) current here rollback-only. */
  markRollbackOnly(): void {
    this.blockHere().rollbackOnly = true;
  }

  /**
   * Commits the current transaction and gives the connection back; the session stays usable and
   * its next statement begins a new one. Its callbacks are then due (`dueCallbacks`).
   */
  commit(): Promise<void> {
    const refused = this.refuseInsideBlock('commit') ?? this.end.error();
    if (refused) return Promise.reject(refused);
    if (this.settled) return RESOLVED;
    return this.lane.run(() => this.ends.commit(this.take()));
  }

  /**
   * Makes the commit under way, if any, roll back instead when it reaches its COMMIT statement
   * (after `beforeCommit`): nobody wants it any more (a streamed response's client left).
   */
  abandonCommit(): void {
    this.ends.abandon();
  }

  /** Rolls back the current transaction (its rollback callbacks are then due) and clears a rollback-only mark. */
  rollback(): Promise<void> {
    const refused = this.refuseInsideBlock('rollback') ?? this.end.error();
    if (refused) return Promise.reject(refused);
    if (!this.wire.open && !this.lane.busy) {
      this.dueCallbacks.note(this.take(), 'rolled back');
      return RESOLVED;
    }
    return this.lane.run(() => this.ends.rollback(this.take()));
  }

  /**
   * Ends the session: later use fails with `reason`'s error. Open streams are destroyed, work
   * already queued runs (a statement issued from now on is refused), then what is uncommitted is
   * rolled back and the connection given back. Every caller gets the same promise.
   */
  close(reason: EndReason): Promise<void> {
    if (this.closing) return this.closing;
    if (this.end.ended) return RESOLVED;
    const refused = this.refuseInsideBlock('close');
    if (refused) return Promise.reject(refused);
    this.end.mark(reason);
    this.streams.destroy(() => this.end.error()!);
    // A session still waiting for a connection stops waiting: its statement fails now, and the
    // connection goes back to the pool when it arrives (see `ConnectionTaker`).
    this.wire.stopWaiting();
    const busy = this.wire.open || (this.lane.busy && !this.wire.acquiring);
    if (!busy) this.dueCallbacks.note(this.take(), 'rolled back');
    this.closing = busy ? this.lane.run(() => this.ends.rollback(this.take())) : RESOLVED;
    return this.closing;
  }

  /** Ends the session at once: the connection is dropped (the server rolls back), later use throws `error`. */
  abort(error: Error): void {
    if (!this.end.mark(error)) return;
    this.streams.destroy(() => error);
    this.dueCallbacks.note(this.take(), 'rolled back');
    this.wire.stopWaiting();
    this.wire.drop(error);
  }

  /** Ends the streams still open with `error`: their connection is gone. */
  loseStreams(error: Error): void {
    this.streams.lose(error);
  }

  /** Destroys the streams still open with `SessionContextEndedError` (their context is over). */
  endOpenStreams(): void {
    const error = () => new SessionContextEndedError(messages.contextEnded(this.dataSourceName));
    this.streams.destroy(error);
  }

  /** Why work issued here must not run: the session ended, or its transaction was lost. */
  refusal(): Error | undefined {
    return this.end.error() ?? this.blockHere().root.broken;
  }

  /** The lane work issued here goes to: the innermost open block or hook of this session, or its own. */
  laneHere(): Lane {
    const lane = this.hooks.frames.current()?.laneOf(this);
    return lane === undefined ? this.lane : lane.open;
  }

  /** The transaction now current, replaced by a fresh one for the work that comes after. */
  private take(): Block {
    this.streamFailure = undefined;
    const block = this.current;
    this.current = new Block();
    return block;
  }

  private blockHere(): Block {
    return this.laneHere().block ?? this.current;
  }

  private refuseInsideBlock(operation: string): Error | undefined {
    if (this.laneHere() === this.lane) return undefined;
    return new SessionBusyError(messages.sessionBusy(this.dataSourceName, operation));
  }
}
