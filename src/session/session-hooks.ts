import type { SessionHook } from '../interfaces/typeorm-context-options.interface.js';

/** The module-level hooks every session runs. */
export interface SessionHooks {
  onSessionStart?: SessionHook;
  beforeCommit?: SessionHook;
  /** Milliseconds to wait for a pooled connection. Default: `DEFAULT_ACQUIRE_TIMEOUT`. */
  acquireTimeout?: number;
  /** Receives errors that must not change the outcome (after-commit callbacks, cleanup). */
  reportError(message: string, error: unknown): void;
}

/** Who owns a session, which decides the advice a late use gets. */
export type SessionOwner = 'context' | 'block' | 'factory';

/** Why a session ended: closed by its owner, released through its runner, its context over, or an error. */
export type EndReason = 'closed' | 'released' | 'context-ended' | Error;
