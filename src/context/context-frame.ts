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
 *
 * Every frame belongs to ONE app (`runtime`), the app of the code that opened it, and is a
 * context for that app only: another app's code looks past it, to the frame that was current
 * when it was opened (`outer`), and so on (see `ownedBy()`). A frame opened outside any context
 * (a NOT_SUPPORTED block, an after-completion callback, a hook) has no unit but still an app.
 */
export class ContextFrame {
  constructor(
    /** The app (its runtime) whose frame this is; undefined only for `OUTSIDE` and for a unit not yet claimed. */
    private readonly app: object | undefined,
    /** The unit of work, or undefined for a frame opened outside any context of its app. */
    readonly unit: UnitOfWork | undefined,
    private readonly parent?: ContextFrame,
    /** A data source name (its session replaced) or a session (its lane replaced). */
    private readonly key?: string | LazySession,
    private readonly value?: LazySession | EntityManager | Lane,
    /** The frame that was current when this one was opened (another app's, or one of a unit this one runs in). */
    private readonly outer?: ContextFrame,
    /** The unit whose transaction the callbacks running in this frame followed (`after()`). */
    private readonly follows?: UnitOfWork,
  ) {}

  /** The app (its runtime) whose frame this is: see the class comment. */
  get runtime(): object | undefined {
    return this.app ?? this.unit?.runtime;
  }

  /**
   * The frame of callbacks that run once a transaction of `unit` ended: outside any context, yet
   * in `unit`'s app, and read-only work there still goes to the primary `unit` used.
   */
  static after(unit: UnitOfWork): ContextFrame {
    return new ContextFrame(
      unit.runtime,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      unit,
    );
  }

  /** A frame of `runtime`'s app outside any context of it, opened in `current` (if any). */
  static outside(runtime: object, current?: ContextFrame): ContextFrame {
    return new ContextFrame(runtime, undefined, undefined, undefined, undefined, current);
  }

  /**
   * The unit whose use of a primary routes read-only transactions begun here (see
   * `connection-route.ts`): this frame's own unit, or the one its callbacks followed.
   */
  get routingUnit(): UnitOfWork | undefined {
    return this.unit ?? this.follows ?? this.parent?.routingUnit;
  }

  /** The frame of a new unit of work (of the unit's app), opened inside whatever frame is current. */
  static forUnit(unit: UnitOfWork, outer?: ContextFrame): ContextFrame {
    return new ContextFrame(unit.runtime, unit, undefined, undefined, undefined, outer);
  }

  /**
   * A child frame in which `dataSource` resolves to `override`. `current` is the frame current
   * where the child is opened, when it is not this one (this one found through `ownedBy()`): the
   * other apps' frames in between stay in force for their code.
   */
  with(
    dataSource: string,
    override: LazySession | EntityManager,
    current?: ContextFrame,
  ): ContextFrame {
    const outer = current === undefined || current === this ? this.outer : current;
    return new ContextFrame(this.app, this.unit, this, dataSource, override, outer, this.follows);
  }

  /** A child frame in which the work `session` is given goes to `lane`. */
  within(session: LazySession, lane: Lane): ContextFrame {
    return new ContextFrame(this.app, this.unit, this, session, lane, this.outer, this.follows);
  }

  /**
   * The innermost frame, this one or one that was current when it was opened, that belongs to
   * `runtime`'s app: another app's frame is no context for `runtime`'s code. A request context
   * opened without saying for which app (`openRequestContext()` with no runtime) is claimed by
   * the first app that looks for its context there.
   */
  ownedBy(runtime: object): ContextFrame | undefined {
    const owner = this.runtime ?? this.unit?.claim(runtime);
    if (owner === runtime) return this;
    return this.outer?.ownedBy(runtime);
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
    return lane ?? this.outer?.laneOf(session);
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

/** The frame of work that runs outside any context, of no app. */
export const OUTSIDE = new ContextFrame(undefined, undefined);
