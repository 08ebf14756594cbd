import type { Lane } from './lane.js';
import type { LazySession } from './lazy-session.js';
import type { TestRun } from './lenders.js';

// What sessions need of the context they work in, without importing it (session/ is the lower
// layer): context/ owns the one AsyncLocalStorage and its frames (`ContextFrame`, `UnitOfWork`)
// and hands every session this view of them, `SessionHooks.frames`.

/** The unit of work of a frame, as a session sees it (context/'s `UnitOfWork`). */
export interface FrameUnit {
  /** The test transaction the unit was born in. */
  readonly born?: TestRun;
  /** Whether this unit, or one it was opened in, used the primary of `dataSource`. */
  usedPrimary(dataSource: string): boolean;
  /** Notes that a transaction of this unit runs on the primary of `dataSource`. */
  notePrimary(dataSource: string): void;
  /** The primary WAL position of `dataSource` its reads on replicas must see, if any. */
  position(dataSource: string): bigint | undefined;
  /** Notes a commit of `dataSource` at `position` on the primary. */
  notePosition(dataSource: string, position: bigint): void;
  /** How many connections of `dataSource` the unit's context holds right now. */
  connectionsHeld(dataSource: string): number;
}

/** A context frame, as a session sees it (context/'s `ContextFrame`). */
export interface SessionFrame {
  /** The unit of work, or undefined for a frame opened outside any context of its app. */
  readonly unit: FrameUnit | undefined;
  /** The unit whose use of a primary routes read-only transactions begun here. */
  readonly routingUnit: FrameUnit | undefined;
  /** The innermost frame, this one or one it was opened in, that belongs to `app`'s app. */
  ownedBy(app: object): SessionFrame | undefined;
  /** A child frame in which `dataSource` resolves to `session`, opened in `current`. */
  with(dataSource: string, session: LazySession, current?: SessionFrame): SessionFrame;
  /** A child frame in which the work `session` is given goes to `lane`. */
  within(session: LazySession, lane: Lane): SessionFrame;
  /** The lane of `session` for work issued in this frame, if a block or hook set one. */
  laneOf(session: LazySession): Lane | undefined;
}

/** The frame current now, running work in another one, and the frames sessions open. */
export interface SessionFrames {
  /** The frame current here, if any. */
  current(): SessionFrame | undefined;
  /** Runs `work` in `frame`. */
  run<T>(frame: SessionFrame, work: () => T): T;
  /** The frame of work that runs outside any context, of no app. */
  readonly outside: SessionFrame;
  /** A frame of `app`'s app outside any context of it, opened in `current` (if any). */
  outsideOf(app: object, current: SessionFrame | undefined): SessionFrame;
  /** The frame of callbacks that run once a transaction of `unit` ended. */
  after(unit: FrameUnit): SessionFrame;
}
