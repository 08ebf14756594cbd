import { finished, type Readable } from 'node:stream';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { OUTSIDE } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { messages } from '../errors/messages.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { SessionBusyError } from '../errors/session-busy.error.js';
import { SessionClosedError } from '../errors/session-closed.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { Block } from './block.js';
import { Lane } from './lane.js';
import type { QueryArgs, StreamArgs } from './session-connection.js';
import type { EndReason, SessionHooks, SessionOwner } from './session-hooks.js';
import { installRunner } from './session-runner.js';
import { type Callback, runCallbacks } from './transaction-callbacks.js';
import type { BeginOptions } from './transaction-dialect.js';
import { TransactionWire } from './transaction-wire.js';

const NOTHING: readonly Callback[] = [];
const RESOLVED = Promise.resolve();

/**
 * One session: an `EntityManager` on its own QueryRunner that takes no connection and sends no
 * BEGIN until its first statement, and gives the connection back when its transaction ends.
 * Everything it sends takes a turn on its lane (see `Lane`), so statements, streams, savepoint
 * blocks and the end of a transaction never overlap; inside a NESTED block, work goes to the
 * block's own lane. The runner always reports an active transaction, so TypeORM's `save()` and
 * friends join it. Only this instance's runner and manager are changed, never a prototype.
 *
 * Owns its transaction's end (COMMIT, ROLLBACK, and the connection's return through
 * `TransactionWire`). Its owner (the context's `UnitOfWork`, a REQUIRES_NEW block, a factory
 * `Session`) decides when the session itself ends.
 */
export class LazySession {
  /** The `EntityManager` users query through. */
  readonly manager: EntityManager;
  /** The session's own lane: its transaction's statements, blocks and end take turns on it. */
  readonly lane = new Lane();
  private readonly wire: TransactionWire;
  /** The transaction work joins now, begun on the server or not yet. */
  private current = new Block();
  private ended?: EndReason;
  private closing?: Promise<void>;
  /** Savepoints opened with `runner.startTransaction()`, innermost last. */
  private readonly manual: Block[] = [];
  /** Open streams, with the lane each was opened on. */
  private readonly streams = new Map<Readable, Lane>();

  constructor(
    /** Name of the data source this session belongs to. */
    readonly dataSourceName: string,
    dataSource: DataSource,
    hooks: SessionHooks,
    private readonly owner: SessionOwner,
    begin: BeginOptions = {},
  ) {
    this.wire = new TransactionWire(
      this,
      dataSource,
      hooks,
      begin,
      () => this.endedError(),
      (error) => {
        this.current.broken ??= error;
      },
    );
    this.manager = this.wire.runner.manager;
    installRunner(this, this.wire.runner);
  }

  /** Whether the session holds a pooled connection right now. */
  get connected(): boolean {
    return this.wire.held;
  }

  /** Whether nothing is open, queued or waiting for a commit. */
  get settled(): boolean {
    const block = this.current;
    return !this.wire.open && !this.lane.busy && !block.rollbackOnly && !block.callbacks.pending;
  }

  /** Whether a stream of the session is open. */
  get streaming(): boolean {
    return this.streams.size > 0;
  }

  /** Whether the session ended: it runs nothing more. */
  get isEnded(): boolean {
    return this.ended !== undefined;
  }

  /** Whether its owner closed or released it, so that its context replaces it on next use. */
  get replaceable(): boolean {
    return this.ended === 'closed' || this.ended === 'released';
  }

  /** Runs a statement after the work queued before it, beginning the transaction if needed. */
  query(args: QueryArgs): Promise<unknown> {
    const lane = this.laneHere();
    const block = lane.block;
    if (block === undefined) return lane.run(() => this.statement(args), this.failedInCurrent);
    return lane.run(
      () => this.wire.send(args, block),
      (error) => this.wire.failed(block, error),
    );
  }

  /** Opens a stream that holds the session until it closes; destroyed if it outlives its block. */
  stream(args: StreamArgs): ReturnType<QueryRunner['stream']> {
    const lane = this.laneHere();
    return new Promise((resolve, reject) => {
      void lane.run(async () => {
        let stream: Readable;
        const block = lane.block ?? this.current;
        try {
          if (lane.block === undefined) await this.begun();
          stream = await this.wire.stream(args, block);
        } catch (error) {
          reject(error as Error);
          return;
        }
        this.streams.set(stream, lane);
        stream.once('error', (error) => this.wire.failed(block, error));
        resolve(stream as Awaited<ReturnType<QueryRunner['stream']>>);
        await new Promise<void>((done) => finished(stream, () => done()));
        this.streams.delete(stream);
      });
    });
  }

  /** Runs `fn` in a SAVEPOINT of the transaction current here, after the work queued before it. */
  nested<T>(fn: (manager: EntityManager) => Promise<T> | T): Promise<T> {
    const ended = this.endedError();
    if (ended) return Promise.reject(ended);
    const lane = this.laneHere();
    const frame = contextStorage.getStore() ?? OUTSIDE;
    return lane.run(async () => {
      if (lane.block === undefined) await this.begun();
      const block = await this.wire.openSavepoint(lane, lane.block ?? this.current);
      const inner = frame.within(this, block.lane!);
      let result: T;
      try {
        result = await contextStorage.run(inner, () => fn(this.manager));
      } catch (error) {
        await this.endBlock(block, false);
        throw error;
      }
      await this.endBlock(block, true);
      return result;
    });
  }

  /** `runner.startTransaction()`: a savepoint in the caller's block, ended by the runner's commit or rollback. */
  openSavepoint(): Promise<void> {
    const lane = this.laneHere();
    return lane.run(async () => {
      if (lane.block === undefined) await this.begun();
      this.manual.push(await this.wire.openSavepoint(lane, lane.block ?? this.current));
    });
  }

  /** `runner.commitTransaction()` / `rollbackTransaction()`: the innermost such savepoint, else the transaction. */
  endSavepoint(keep: boolean): Promise<void> {
    const block = this.manual.pop();
    if (block !== undefined) {
      return block.lane!.parent!.open.run(() => this.wire.endSavepoint(block, keep));
    }
    if (!keep) return this.rollback();
    return this.commit().then((callbacks) =>
      runCallbacks(callbacks, (error) => this.wire.report('afterCommit callback failed', error)),
    );
  }

  /** `runner.connect()`: begins the transaction if needed and returns the driver's connection. */
  connectRunner(): Promise<unknown> {
    // TypeORM's own query() calls it for every statement the session sends: answer at once.
    if (this.wire.held) return Promise.resolve(this.wire.driverConnection);
    const lane = this.laneHere();
    const ready = lane.block === undefined ? lane.run(() => this.begun()) : RESOLVED;
    return ready.then(() => this.wire.driverConnection);
  }

  /** Registers a callback to run after the transaction current here commits. */
  onCommitted(callback: Callback): void {
    this.blockHere().callbacks.add(callback);
  }

  /** Marks the transaction (or savepoint) current here rollback-only. */
  markRollbackOnly(): void {
    this.blockHere().rollbackOnly = true;
  }

  /**
   * Commits the current transaction and gives the connection back; the session stays usable and
   * its next statement begins a new one. Resolves to the `afterCommit` callbacks to run.
   */
  commit(): Promise<readonly Callback[]> {
    const refused = this.refuseInsideBlock('commit') ?? this.endedError();
    if (refused) return Promise.reject(refused);
    if (this.settled) return Promise.resolve(NOTHING);
    return this.lane.run(() => this.commitNow());
  }

  /** Rolls back the current transaction, drops its callbacks and clears a rollback-only mark. */
  rollback(): Promise<void> {
    const refused = this.refuseInsideBlock('rollback') ?? this.endedError();
    if (refused) return Promise.reject(refused);
    if (!this.wire.open && !this.lane.busy) {
      this.current = new Block();
      return RESOLVED;
    }
    return this.lane.run(() => this.wire.rollback(this.take()));
  }

  /**
   * Ends the session: later use fails with `reason`'s error. Open streams are destroyed, work
   * already queued runs (a statement issued from now on is refused), then what is uncommitted is
   * rolled back and the connection given back. Every caller gets the same promise.
   */
  close(reason: EndReason): Promise<void> {
    if (this.closing) return this.closing;
    if (this.ended !== undefined) return RESOLVED;
    const refused = this.refuseInsideBlock('close');
    if (refused) return Promise.reject(refused);
    this.ended = reason;
    this.endStreams(() => true);
    // A session still waiting for a connection gives it back when it arrives (`TransactionWire`).
    const busy = this.wire.open || (this.lane.busy && !this.wire.acquiring);
    this.closing = busy ? this.lane.run(() => this.wire.rollback(this.take())) : RESOLVED;
    return this.closing;
  }

  /** Ends the session at once: the connection is dropped (the server rolls back), later use throws `error`. */
  abort(error: Error): void {
    if (this.ended !== undefined) return;
    this.ended = error;
    this.endStreams(() => true);
    this.take();
    this.wire.drop(error);
  }

  /** Destroys the streams still open with `SessionContextEndedError` (their context is over). */
  endOpenStreams(): void {
    this.endStreams(
      () => true,
      new SessionContextEndedError(messages.contextEnded(this.dataSourceName)),
    );
  }

  private async commitNow(): Promise<readonly Callback[]> {
    const block = this.take();
    if (block.rollbackOnly) {
      await this.wire.rollback(block).catch(this.reportCleanup);
      throw new RollbackOnlyError(messages.rollbackOnly(this.dataSourceName));
    }
    if (!this.wire.open) return block.callbacks.committed();
    await this.wire.commit(block);
    return block.callbacks.committed();
  }

  private statement(args: QueryArgs): Promise<unknown> {
    if (this.wire.open) return this.wire.send(args, this.current);
    return this.begun().then(() => this.wire.send(args, this.current));
  }

  /** Resolves once a transaction is open on the session's own lane. */
  private begun(): Promise<void> {
    if (this.wire.open) return RESOLVED;
    const ended = this.endedError();
    if (ended) return Promise.reject(ended);
    return this.wire.begin(this.lane, this.current);
  }

  private async endBlock(block: Block, keep: boolean): Promise<void> {
    this.endStreams(
      (lane) => lane === block.lane,
      new SessionContextEndedError(messages.blockEnded(this.dataSourceName)),
    );
    await this.wire.endSavepoint(block, keep);
  }

  /** The transaction now current, replaced by a fresh one for the work that comes after. */
  private take(): Block {
    const block = this.current;
    this.current = new Block();
    return block;
  }

  /** The lane work issued here goes to: the innermost open block or hook of this session, or its own. */
  laneHere(): Lane {
    const lane = contextStorage.getStore()?.laneOf(this);
    return lane === undefined ? this.lane : lane.open;
  }

  private blockHere(): Block {
    return this.laneHere().block ?? this.current;
  }

  private refuseInsideBlock(operation: string): Error | undefined {
    if (this.laneHere() === this.lane) return undefined;
    return new SessionBusyError(messages.sessionBusy(this.dataSourceName, operation));
  }

  private readonly failedInCurrent = (error: unknown): void =>
    this.wire.failed(this.current, error);

  private readonly reportCleanup = (error: unknown): void =>
    this.wire.report(`Rollback of '${this.dataSourceName}' failed`, error);

  private endStreams(which: (lane: Lane) => boolean, error: Error = this.endError()): void {
    for (const [stream, lane] of this.streams) if (which(lane)) stream.destroy(error);
  }

  private endedError(): Error | undefined {
    return this.ended === undefined ? undefined : this.endError();
  }

  /** The error a use after the end gets. */
  endError(): Error {
    const reason = this.ended;
    if (reason instanceof Error) return reason;
    if (reason === 'context-ended') {
      return new SessionContextEndedError(messages.contextEnded(this.dataSourceName));
    }
    return new SessionClosedError(
      messages.sessionClosed(this.dataSourceName, this.owner, reason === 'released'),
    );
  }
}
