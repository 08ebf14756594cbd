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
  ) {}

  /** A child frame in which `dataSource` resolves to `override`. */
  with(dataSource: string, override: LazySession | EntityManager): ContextFrame {
    return new ContextFrame(this.unit, this, dataSource, override);
  }

  /** A child frame in which the work `session` is given goes to `lane`. */
  within(session: LazySession, lane: Lane): ContextFrame {
    return new ContextFrame(this.unit, this, session, lane);
  }

  /** The session or manager a block of this frame chain put in place for `dataSource`. */
  find(dataSource: string): LazySession | EntityManager | undefined {
    return this.lookup(dataSource) as LazySession | EntityManager | undefined;
  }

  /** The lane of `session` for work issued in this frame, if a block or hook set one. */
  laneOf(session: LazySession): Lane | undefined {
    return this.lookup(session) as Lane | undefined;
  }

  private lookup(key: string | LazySession): unknown {
    if (this.key === key) return this.value;
    return this.parent?.lookup(key);
  }
}

/** The frame of work that runs outside any context. */
export const OUTSIDE = new ContextFrame(undefined);
