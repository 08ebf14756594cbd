import type { EntityManager } from 'typeorm';
import type { LazySession } from '../session/lazy-session.js';

/**
 * An independent session outside the context: its own connection (taken on first query, given
 * back when its transaction ends) and transaction. The caller commits; `close()` rolls back
 * whatever is uncommitted. Works with `await using`.
 */
export class Session implements AsyncDisposable {
  /** @internal */
  constructor(private readonly lazy: LazySession) {}

  /** The session's `EntityManager`; `save()` and friends join its transaction. */
  get manager(): EntityManager {
    return this.lazy.manager;
  }

  /** Commits and gives the connection back; the next query begins a new transaction. */
  commit(): Promise<void> {
    return this.lazy.dueCallbacks.around(() => this.lazy.commit());
  }

  /** Rolls back and gives the connection back; the session stays usable. */
  rollback(): Promise<void> {
    return this.lazy.dueCallbacks.around(() => this.lazy.rollback());
  }

  /** Rolls back what is uncommitted and releases the connection; later use throws. */
  close(): Promise<void> {
    return this.lazy.dueCallbacks.around(() => this.lazy.close('closed'));
  }

  /** `await using session = sessionFactory.open()` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
