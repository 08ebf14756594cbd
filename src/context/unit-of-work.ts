import type { LazySession } from './lazy-session.js';

const RESOLVED = Promise.resolve();

/**
 * The sessions of one request, job or `runInNewContext()`: at most one per data source, created
 * on first use, committed or rolled back together and always released when the unit completes.
 */
export class UnitOfWork {
  /** Sessions by data source name, in creation order (the order they commit in). */
  readonly sessions = new Map<string, LazySession>();
  /** True once the unit completed: its sessions are dead and new ones are refused. */
  ended = false;
  /** True once an interceptor owns completing this unit. */
  claimed = false;
  /** Sessions of REQUIRES_NEW blocks running in this unit right now (they end with their block). */
  readonly blocks = new Set<LazySession>();
  /** Called once, when the first session is created (the middleware arms its cleanup here). */
  onFirstSession?: () => void;

  /** The session for `dataSource`, created by `create` on first use. */
  session(dataSource: string, create: () => LazySession): LazySession {
    let session = this.sessions.get(dataSource);
    if (session === undefined) {
      session = create();
      this.sessions.set(dataSource, session);
      const armCleanup = this.onFirstSession;
      if (armCleanup) {
        this.onFirstSession = undefined;
        armCleanup();
      }
    }
    return session;
  }

  /** How many connections of `dataSource` this unit's sessions and blocks hold right now. */
  connectionsHeld(dataSource: string): number {
    let held = 0;
    for (const session of [...this.sessions.values(), ...this.blocks]) {
      if (session.dataSourceName === dataSource && session.connected) held++;
    }
    return held;
  }

  /**
   * Ends the unit: commits every session in order when `commit` is true (after the first failure
   * the rest are rolled back), then closes them all, which rolls back what is uncommitted and
   * releases every connection, whatever failed. Rethrows the first commit failure. Calling it
   * again returns the same completion.
   */
  complete(commit: boolean): Promise<void> {
    if (this.completion === undefined && !this.endIfEmpty()) this.completion = this.finish(commit);
    return this.completion ?? RESOLVED;
  }

  /** Ends at once a unit that never created a session (nothing to commit or release); false otherwise. */
  endIfEmpty(): boolean {
    if (this.sessions.size > 0) return false;
    this.ended = true;
    this.completion ??= RESOLVED;
    return true;
  }

  private completion?: Promise<void>;

  private async finish(commit: boolean): Promise<void> {
    let failure: { error: unknown } | undefined;
    if (commit) {
      for (const session of [...this.sessions.values()]) {
        try {
          await session.commit();
        } catch (error) {
          failure = { error };
          break;
        }
      }
    }
    this.ended = true;
    // Closes what exists now: a hook may have opened another data source's session meanwhile.
    const sessions = [...this.sessions.values()];
    if (sessions.length === 1) await sessions[0]!.close('context-ended');
    else await Promise.all(sessions.map((session) => session.close('context-ended')));
    if (failure) throw failure.error;
  }
}
