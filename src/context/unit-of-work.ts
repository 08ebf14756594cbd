import type { Readable } from 'node:stream';
import type { LazySession } from '../session/lazy-session.js';
import type { TestRun } from '../session/lenders.js';
import type { BeginOptions } from '../session/transaction-dialect.js';
import {
  type UnitKind,
  type UnitMessage,
  endUnit as traceEnd,
  startUnit,
  unitChannel,
} from '../diagnostics/channels.js';
import { OpenBlocks } from './open-blocks.js';
import { captureOrigin, inScope } from '../diagnostics/scope.js';
import { endTransactions, endUnit } from './unit-commits.js';
import type { LogUnit } from '../logger.js';
import { nextUnitId, unitTag } from './unit-tag.js';
import type { SessionRuntime } from './session-runtime.js';

const RESOLVED = Promise.resolve();

/** What a handler that joins a shared unit (see `UnitOperation`) decides about it. */
export interface JoinedHandler {
  /** Whether the handler wants the unit committed (its interceptor's `shouldCommit()`). */
  shouldCommit(): boolean;
  /** What the caller gets for an error of the unit's end (its interceptor's `onError()`). */
  mapError(error: unknown): unknown;
}

/**
 * The owner of a unit that several handlers run in and none of them ends: a GraphQL operation,
 * whose root and field resolvers each pass through the interceptor (see `src/graphql/`).
 */
export interface UnitOperation {
  /** Whether a handler joined already (the first one's choices apply). */
  readonly joined: boolean;
  /** Called by the interceptor of the first handler that runs in the unit. */
  join(handler: JoinedHandler): void;
}

/**
 * The sessions of one request, job or `runInNewContext()`: at most one per data source, created
 * on first use, committed or rolled back together and always ended when the unit ends.
 *
 * Owns the end of its sessions. Whoever opened or claimed the unit (the interceptor, the
 * middleware's cleanup, a GraphQL operation's `OperationUnit`, `runInNewContext()`,
 * `@Transactional()` outside a context) calls `end()` once.
 */
export class UnitOfWork implements LogUnit {
  /** Sessions by data source name, in creation order (the order they commit in). */
  readonly sessions = new Map<string, LazySession>();
  /** True once the unit ended: its sessions are dead and new ones are refused. */
  ended = false;
  /** True once an interceptor (or a `UnitOperation`) owns ending this unit. */
  claimed = false;
  /**
   * True for the unit the middleware opened for an HTTP request: the handler that serves the
   * request claims and ends it. Any other unit is ended by whoever opened it.
   */
  forRequest = false;
  /**
   * What opened the unit, for the `unit` tracing channel; undefined for a REQUIRES_NEW block's
   * or an owned transaction's unit (the `transaction` channel has those).
   */
  kind?: UnitKind;
  /** Where the unit began, for a tracer's span of it (see `diagnostics/scope.ts`, `originOf()`). */
  origin?: unknown;

  /** Names what opened the unit (for the `unit` channel), and notes for a tracer where it began. */
  setKind(kind: UnitKind): void {
    this.kind = kind;
    this.origin = captureOrigin();
  }
  /** The handler that serves the unit (`UsersController.create()`), set only while the `unit` channel has subscribers. */
  private handler?: string;
  /** The route or pattern the handler serves, set with `handler`. */
  private route?: string;
  /** The unit's message on the `unit` channel, once its first session published `start`. */
  private trace?: UnitMessage;

  /** The message of this unit on the `unit` channel, or of the nearest traced unit it runs in. */
  get tracedMessage(): UnitMessage | undefined {
    return this.trace ?? this.parent?.tracedMessage ?? this.enclosing?.tracedMessage;
  }
  /** The HTTP request the unit serves, for the `requestId` option (read only when a line is logged). */
  request?: unknown;
  private ownId?: number;
  private tag?: string;
  /** The operation that owns ending this unit, when handlers share it (GraphQL). */
  operation?: UnitOperation;
  /** Units of REQUIRES_NEW blocks running in this unit right now (each ends with its block). */
  private blocks?: Set<UnitOfWork>;
  /**
   * The test transaction the unit was born in: its parent's, else the one running when it began
   * (see `Lenders`). Its sessions stay in it, also once it ended.
   */
  born?: TestRun;
  /**
   * Data sources of which something committed outside the unit's live sessions: in sessions it
   * replaced (after close()), or in blocks that own their transactions run in it (`addCommits()`).
   */
  private retiredCommits?: Set<string>;
  /**
   * How the sessions this unit creates on first use begin, if not plainly: an owned block's options
   * for its data source, its `timeout` for the others.
   */
  begin?: (dataSource: string) => BeginOptions | undefined;
  /** Called once, when the first session is created (the middleware arms its cleanup here). */
  onFirstSession?: (unit: UnitOfWork) => void;
  /** The HTTP response of a unit the middleware opened (its cleanup waits for it to close). */
  response?: unknown;
  private ending?: Promise<void>;
  /** Data sources with replicas whose primary a transaction of this unit used (see `connection-route.ts`). */
  private primaries?: Set<string>;
  /**
   * The primary WAL positions, by data source, that the unit's reads on replicas must see: carried
   * in (a client's consistency token) or committed by it and the units opened in it.
   */
  private positions?: Map<string, bigint>;
  /** Whether a commit of this unit (or one opened in it) moved a position past what was carried in. */
  advanced = false;
  /**
   * The transaction blocks running in the unit now, counted once the interceptor sends the unit's
   * values one by one (it makes this then); undefined elsewhere.
   */
  openBlocks?: OpenBlocks;

  constructor(
    /**
     * The unit this one was opened in (`runInNewContext()` inside a request), or whose
     * after-completion callback opened it, if any: reads here follow what that one wrote.
     */
    readonly parent?: UnitOfWork,
    runtime?: SessionRuntime,
    /** The unit whose REQUIRES_NEW block this one is: its connections count as that unit's. */
    private readonly enclosing?: UnitOfWork,
  ) {
    this.owner = runtime;
    this.born = parent?.born ?? runtime?.lenders.current;
  }

  private owner?: SessionRuntime;

  /**
   * The app's runtime whose context this is; other apps' sessions never join it. Undefined only
   * for a request context opened without naming its app, until an app claims it.
   */
  get runtime(): SessionRuntime | undefined {
    return this.owner;
  }

  /**
   * The unit's id, taken on first use (see `unit-tag.ts`); a REQUIRES_NEW block's unit has the id
   * of the unit it runs in: its lines belong to that request, job or context.
   */
  get id(): number {
    return this.enclosing?.id ?? (this.ownId ??= nextUnitId());
  }

  /** See `LogUnit.logTag()`; made once, at the unit's first log line. */
  logTag(): string {
    return this.enclosing?.logTag() ?? (this.tag ??= unitTag(this));
  }

  /** Makes `runtime` the unit's app if it has none yet; returns the unit's app. */
  claim(runtime: object): object {
    if (this.owner === undefined) {
      this.owner = runtime as SessionRuntime;
      this.born ??= this.owner.lenders?.current;
    }
    return this.owner;
  }

  /** A unit for a REQUIRES_NEW block run in this one: a fresh context for every data source. */
  openBlock(): UnitOfWork {
    const block = new UnitOfWork(this, this.runtime, this);
    (this.blocks ??= new Set()).add(block);
    return block;
  }

  /** The unit of the request, job or context this one is a REQUIRES_NEW block of (itself if none). */
  get outermost(): UnitOfWork {
    return this.enclosing?.outermost ?? this;
  }

  /** Whether this unit, or one it was opened in, used the primary of `dataSource`. */
  usedPrimary(dataSource: string): boolean {
    return (
      this.primaries?.has(dataSource) === true || this.parent?.usedPrimary(dataSource) === true
    );
  }

  /** Notes that a transaction of this unit runs on the primary of `dataSource` (so do the units it runs in). */
  notePrimary(dataSource: string): void {
    (this.primaries ??= new Set()).add(dataSource);
    this.parent?.notePrimary(dataSource);
  }

  /**
   * The primary WAL position of `dataSource` a read-only transaction of this unit may run on a
   * replica only past: the furthest carried in or committed here or in a unit it was opened in.
   */
  position(dataSource: string): bigint | undefined {
    const own = this.positions?.get(dataSource);
    const outer = this.parent?.position(dataSource);
    if (own === undefined) return outer;
    return outer === undefined || own > outer ? own : outer;
  }

  /** Notes a commit of `dataSource` at `position` (so do the units this one was opened in). */
  notePosition(dataSource: string, position: bigint): void {
    if (this.raise(dataSource, position)) this.advanced = true;
    this.parent?.notePosition(dataSource, position);
  }

  /** Makes the unit's reads see at least `positions` (a consistency token carried in). */
  carry(positions: ReadonlyMap<string, bigint>): void {
    for (const [dataSource, position] of positions) this.raise(dataSource, position);
  }

  /** The positions the unit's reads must see, by data source (its own and the units' it was opened in). */
  allPositions(): Map<string, bigint> {
    const all = this.parent?.allPositions() ?? new Map<string, bigint>();
    for (const [dataSource, position] of this.positions ?? []) {
      const known = all.get(dataSource);
      if (known === undefined || position > known) all.set(dataSource, position);
    }
    return all;
  }

  private raise(dataSource: string, position: bigint): boolean {
    const known = this.positions?.get(dataSource);
    if (known !== undefined && known >= position) return false;
    (this.positions ??= new Map()).set(dataSource, position);
    return true;
  }

  /** The session for `dataSource` if it has one in use (no closure to allocate on this hot path). */
  live(dataSource: string): LazySession | undefined {
    const session = this.sessions.get(dataSource);
    return session === undefined || session.replaceable ? undefined : session;
  }

  /** The session for `dataSource`, created by `create` on first use (or after it was released). */
  session(dataSource: string, create: () => LazySession): LazySession {
    let session = this.sessions.get(dataSource);
    if (session === undefined || session.replaceable) {
      if (session?.commits) (this.retiredCommits ??= new Set()).add(dataSource);
      if (this.kind !== undefined && this.trace === undefined && unitChannel.hasSubscribers)
        this.trace = startUnit(this.kind, this.handler, this.route, this);
      session = create();
      if (this.trace !== undefined) session.unitTrace = this.trace;
      this.sessions.set(dataSource, session);
      const armCleanup = this.onFirstSession;
      if (armCleanup) {
        this.onFirstSession = undefined;
        armCleanup(this);
      }
    }
    return session;
  }

  /**
   * Counts what a block run in this unit committed (a REQUIRES_NEW block that ended) as committed
   * by this unit too: a block around it that failed then is not re-run (`PartlyCommittedError`).
   */
  addCommits(dataSources: readonly string[]): void {
    for (const name of dataSources) (this.retiredCommits ??= new Set()).add(name);
  }

  /**
   * The data sources of which anything committed in this unit so far: midway
   * (`sessionContext.commit()`, an implicit commit on MySQL/MariaDB), when it ended, or in a
   * block that owns its transactions run in it.
   */
  committedDataSources(): string[] {
    const names = new Set(this.retiredCommits);
    for (const [name, session] of this.sessions) if (session.commits > 0) names.add(name);
    return [...names];
  }

  /** How many connections of `dataSource` this unit's context (its sessions and blocks) holds right now. */
  connectionsHeld(dataSource: string): number {
    if (this.enclosing) return this.enclosing.connectionsHeld(dataSource);
    return this.heldWithBlocks(dataSource);
  }

  private heldWithBlocks(dataSource: string): number {
    let held = 0;
    for (const session of this.sessions.values()) {
      if (session.dataSourceName === dataSource && session.connected) held++;
    }
    if (this.blocks) for (const block of this.blocks) held += block.heldWithBlocks(dataSource);
    return held;
  }

  /**
   * Names the handler that serves the unit, for the `unit` channel: also on the message its start
   * already published (a guard may have used the database before the handler was known).
   */
  nameHandler(handler: string | undefined, route?: string): void {
    if (handler !== undefined) this.handler = handler;
    if (route !== undefined) this.route = route;
    if (this.trace) {
      if (handler !== undefined) this.trace.handler = handler;
      if (route !== undefined) this.trace.route = route;
    }
  }

  /**
   * Ends the unit. With `commit`: streams still open are destroyed, every session commits in
   * order (sessions a `beforeCommit` hook opens or writes to meanwhile commit too), each giving
   * its connection back. Then the unit ends: what is uncommitted (all of it after a failed
   * commit, or without `commit`) is rolled back and every connection given back; only then the
   * transactions' callbacks run (`afterCommit` of those that committed, `afterRollback` of the
   * others). Rethrows the first commit failure. Calling it again returns the same end.
   */
  end(commit: boolean): Promise<void> {
    if (this.ending === undefined && !this.endIfEmpty()) {
      const trace = this.trace;
      if (trace === undefined) this.ending = endUnit(this, commit);
      else
        this.ending = traceEnd(
          trace,
          inScope(trace, () => endUnit(this, commit)),
          commit,
        );
    }
    this.enclosing?.blocks?.delete(this);
    return this.ending ?? RESOLVED;
  }

  /** Whether a session of the unit has a stream open (a response may still be reading it). */
  get streaming(): boolean {
    for (const session of this.sessions.values()) if (session.streaming) return true;
    return false;
  }

  /** The database streams its sessions have open now (a response may be reading them). */
  openStreams(): Readable[] {
    const open: Readable[] = [];
    for (const session of this.sessions.values()) open.push(...session.openStreams);
    return open;
  }

  /** The first error a database stream of the unit failed with, if one did. */
  get streamFailure(): Error | undefined {
    for (const session of this.sessions.values()) {
      if (session.streamFailure !== undefined) return session.streamFailure;
    }
    return undefined;
  }

  /** Whether every session is settled: nothing open, queued or waiting for a commit. */
  get settled(): boolean {
    for (const session of this.sessions.values()) {
      if (!session.isEnded && !session.settled) return false;
    }
    return true;
  }

  /**
   * Ends the transactions open so far, the unit staying open (a streamed response before each
   * value): commits them in one pass (with what `beforeCommit` hooks write meanwhile in sessions
   * the pass has not reached; a transaction other code begins meanwhile is left for the next
   * call or the unit's end) or, without `commit`, rolls them back; each gives its connection
   * back, then their callbacks run. The sessions stay usable: their next statement begins a new
   * transaction. Rethrows the first failure.
   */
  endTransactions(commit: boolean): Promise<void> {
    return endTransactions(this, commit);
  }

  /** Makes the commits under way roll back when they reach their COMMIT statement (see `LazySession.abandonCommit()`). */
  abandonCommits(): void {
    for (const session of this.sessions.values()) session.abandonCommit();
  }

  /** Ends at once a unit that never created a session (nothing to commit or release); false otherwise. */
  endIfEmpty(): boolean {
    if (this.sessions.size > 0) return false;
    this.ended = true;
    this.ending ??= RESOLVED;
    return true;
  }
}
