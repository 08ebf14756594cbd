import type { EntityManager } from 'typeorm';
import type { Lane } from '../session/lane.js';
import type { LazySession } from '../session/lazy-session.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * What `contextStorage` holds: the unit of work of the request, job or `runInNewContext()`, plus
 * what blocks inside it changed: a data source whose session a block replaced (REQUIRES_NEW, or a
 * plain manager for NOT_SUPPORTED), or the lane a session's work goes to inside one of its NESTED
 * blocks or hooks. Frames are immutable; a block runs in a child frame, so siblings never see
 * each other's changes.
 */
export class ContextFrame {
  constructor(
    /** The unit of work, or undefined for a frame opened outside any context. */
    readonly unit: UnitOfWork | undefined,
    private readonly parent?: ContextFrame,
    /** A data source name (its session replaced) or a session (its lane replaced). */
    private readonly key?: string | LazySession,
    private readonly value?: LazySession | EntityManager | Lane,
    /** The frame current when this unit's frame was opened (a `runInNewContext()` inside a request). */
    private readonly outer?: ContextFrame,
    /** The unit whose transaction the callbacks running in this frame followed (`after()`). */
    private readonly follows?: UnitOfWork,
  ) {}

  /**
   * The frame of callbacks that run once a transaction of `unit` ended: outside any context, yet
   * read-only work there still goes to the primary `unit` used (read-your-writes).
   */
  static after(unit: UnitOfWork): ContextFrame {
    return new ContextFrame(undefined, undefined, undefined, undefined, undefined, unit);
  }

  /**
   * The unit whose use of a primary routes read-only transactions begun here (see
   * `connection-route.ts`): this frame's own unit, or the one its callbacks followed.
   */
  get routingUnit(): UnitOfWork | undefined {
    return this.unit ?? this.follows ?? this.parent?.routingUnit;
  }

  /** The frame of a new unit of work, opened inside whatever frame is current. */
  static forUnit(unit: UnitOfWork, outer?: ContextFrame): ContextFrame {
    return new ContextFrame(unit, undefined, undefined, undefined, outer);
  }

  /** A child frame in which `dataSource` resolves to `override`. */
  with(dataSource: string, override: LazySession | EntityManager): ContextFrame {
    return new ContextFrame(this.unit, this, dataSource, override);
  }

  /** A child frame in which the work `session` is given goes to `lane`. */
  within(session: LazySession, lane: Lane): ContextFrame {
    return new ContextFrame(this.unit, this, session, lane);
  }

  /**
   * The innermost frame, this one or one its unit was opened in, whose unit belongs to `runtime`
   * (or to no app in particular): another app's unit is no context for `runtime`'s sessions.
   */
  ownedBy(runtime: object): ContextFrame | undefined {
    const owner = this.unit?.runtime;
    if (owner === undefined || owner === runtime) return this;
    return this.root().outer?.ownedBy(runtime);
  }

  /** The frame the unit of this one was opened with (the end of its `parent` chain). */
  private root(): ContextFrame {
    return this.parent?.root() ?? this;
  }

  /** The session or manager a block of this frame chain put in place for `dataSource`. */
  find(dataSource: string): LazySession | EntityManager | undefined {
    return this.lookup(dataSource) as LazySession | EntityManager | undefined;
  }

  /**
   * The lane of `session` for work issued in this frame, if a block or hook set one (here, or in
   * the frame a unit opened inside it ran in: an outer session's manager used there joins the
   * block that was open around it).
   */
  laneOf(session: LazySession): Lane | undefined {
    const lane = this.lookup(session) as Lane | undefined;
    return lane ?? this.root().outer?.laneOf(session);
  }

  /**
   * Whether code running in this frame runs inside `session`'s transaction: the session is the
   * one its unit (or a block around it) gives for its data source, here or in a unit this one was
   * opened in. (The testing kit nests such a session's transaction in that one's.)
   */
  runsInside(session: LazySession): boolean {
    if (this.key === session.dataSourceName && this.value === session) return true;
    if (this.key === undefined && this.unit?.sessions.get(session.dataSourceName) === session) {
      return true;
    }
    return (this.parent ?? this.outer)?.runsInside(session) ?? false;
  }

  private lookup(key: string | LazySession): unknown {
    if (this.key === key) return this.value;
    return this.parent?.lookup(key);
  }
}

/** The frame of work that runs outside any context. */
export const OUTSIDE = new ContextFrame(undefined);
