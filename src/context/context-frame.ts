import type { EntityManager } from 'typeorm';
import type { LazySession } from './lazy-session.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * What `contextStorage` holds: the unit of work of the request, job or `runInNewContext()`, plus
 * the blocks that override one data source's session inside it (REQUIRES_NEW and friends).
 * Frames are immutable; a block runs in a child frame, so siblings never see each other.
 */
export class ContextFrame {
  constructor(
    /** The unit of work, or undefined for a frame opened outside any context. */
    readonly unit: UnitOfWork | undefined,
    private readonly parent?: ContextFrame,
    private readonly dataSource?: string,
    /** The block's session, or a plain manager when the block runs without a transaction. */
    private readonly override?: LazySession | EntityManager,
    /** Set while `onSessionStart` runs for that session: its queries must not wait for themselves. */
    readonly starting?: LazySession,
  ) {}

  /** A child frame in which `dataSource` resolves to `override`. */
  with(dataSource: string, override: LazySession | EntityManager): ContextFrame {
    return new ContextFrame(this.unit, this, dataSource, override);
  }

  /** A child frame marking `session` as running its start hook. */
  startingFor(session: LazySession): ContextFrame {
    return new ContextFrame(this.unit, this, undefined, undefined, session);
  }

  /** The block override for `dataSource`, if a block of this frame chain set one. */
  find(dataSource: string): LazySession | EntityManager | undefined {
    if (this.override !== undefined && this.dataSource === dataSource) return this.override;
    return this.parent?.find(dataSource);
  }
}
