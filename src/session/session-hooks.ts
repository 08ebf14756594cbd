import type { SessionHook } from '../interfaces/typeorm-context-options.interface.js';
import type { ConnectionLender } from './pooled-connection.js';
import type { CallbackPolicy } from './transaction-callbacks.js';

/** The module-level hooks every session runs, and what to do with its callbacks' errors. */
export interface SessionHooks extends CallbackPolicy {
  onSessionStart?: SessionHook;
  beforeCommit?: SessionHook;
  /** Milliseconds to wait for a pooled connection. Default: `DEFAULT_ACQUIRE_TIMEOUT`. */
  acquireTimeout?: number;
  /** Who lends connections of `dataSource` instead of its pool, if anyone (a test transaction). */
  lender?(dataSource: string): ConnectionLender | undefined;
}

/** Who owns a session, which decides the advice a late use gets. */
export type SessionOwner = 'context' | 'block' | 'factory';

/** Why a session ended: closed by its owner, released through its runner, its context over, or an error. */
export type EndReason = 'closed' | 'released' | 'context-ended' | Error;
