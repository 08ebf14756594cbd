import type { SessionHook } from '../interfaces/typeorm-context-options.interface.js';

/** The module-level hooks every session runs. */
export interface SessionHooks {
  onSessionStart?: SessionHook;
  beforeCommit?: SessionHook;
  /** Milliseconds to wait for a pooled connection. Default: `DEFAULT_ACQUIRE_TIMEOUT`. */
  acquireTimeout?: number;
  /** Receives errors of after-commit callbacks (they never undo the commit). */
  reportError(message: string, error: unknown): void;
}

/** Why a session was closed, which decides the message of a late use. */
export type CloseReason = 'closed' | 'context-ended';
