import { messages } from '../errors/messages.js';
import { SessionClosedError } from '../errors/session-closed.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import type { EndReason, SessionOwner } from './session-hooks.js';

/** Whether and why a session ended, and the error every later use of it gets. */
export class SessionEnd {
  private reason?: EndReason;

  constructor(
    private readonly dataSource: string,
    private readonly owner: SessionOwner,
  ) {}

  /** Whether the session ended. */
  get ended(): boolean {
    return this.reason !== undefined;
  }

  /** Whether its owner closed or released it (its context then replaces it on next use). */
  get byOwner(): boolean {
    return this.reason === 'closed' || this.reason === 'released';
  }

  /** Ends the session for `reason`; false if it had ended already. */
  mark(reason: EndReason): boolean {
    if (this.reason !== undefined) return false;
    this.reason = reason;
    return true;
  }

  /** The error a use after the end gets; undefined while the session lives. */
  error(): Error | undefined {
    const reason = this.reason;
    if (reason === undefined) return undefined;
    if (reason instanceof Error) return reason;
    if (reason === 'context-ended') {
      return new SessionContextEndedError(messages.contextEnded(this.dataSource));
    }
    return new SessionClosedError(
      messages.sessionClosed(this.dataSource, this.owner, reason === 'released'),
    );
  }
}
