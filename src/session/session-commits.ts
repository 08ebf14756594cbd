import { messages } from '../errors/messages.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import type { Block } from './block.js';
import type { DueCallbacks } from './due-callbacks.js';
import type { LazySession } from './lazy-session.js';
import type { TransactionWire } from './transaction-wire.js';

/**
 * How one session's transaction ends (owned by its `LazySession`, run in a task of its lane):
 * committed unless marked rollback-only or abandoned, or rolled back, each making its callbacks
 * due; and the commit under way, which an ended context can abandon.
 */
export class SessionCommits {
  /** The transaction being committed now, if any (see `abandon()`). */
  private committing?: Block;

  constructor(
    private readonly session: LazySession,
    private readonly wire: TransactionWire,
    private readonly callbacks: DueCallbacks,
  ) {}

  /** Commits `block` (rolls it back if it is rollback-only) and gives the connection back. */
  async commit(block: Block): Promise<void> {
    this.committing = block;
    const open = this.wire.open;
    try {
      if (block.rollbackOnly) {
        await this.wire.rollback(block).catch(this.wire.reportRollback);
        throw new RollbackOnlyError(messages.rollbackOnly(this.session.dataSourceName));
      }
      await this.wire.commit(block);
    } catch (error) {
      this.committing = undefined;
      this.callbacks.note(block, 'rolled back');
      throw error;
    }
    this.committing = undefined;
    if (open) this.session.commits++;
    this.callbacks.note(block, 'committed');
  }

  /** Rolls `block` back and gives the connection back. */
  async rollback(block: Block): Promise<void> {
    try {
      await this.wire.rollback(block);
    } finally {
      this.callbacks.note(block, 'rolled back');
    }
  }

  /**
   * Makes the commit under way, if any, roll back instead when it reaches its COMMIT statement
   * (after `beforeCommit`): nobody wants it any more (a streamed response's client left).
   */
  abandon(): void {
    const block = this.committing;
    if (block === undefined) return;
    block.broken ??= new SessionContextEndedError(
      messages.contextEnded(this.session.dataSourceName),
    );
  }
}
