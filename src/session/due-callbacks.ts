import type { Block } from './block.js';
import {
  type Callback,
  type CallbackPolicy,
  type CompletionStatus,
  runCallbacks,
} from './transaction-callbacks.js';

const RESOLVED = Promise.resolve();

/**
 * The callbacks of one session's transactions that ended (owned by its `LazySession`), kept until
 * their connection is back in the pool, then run by whoever ended them.
 */
export class DueCallbacks {
  /** Callbacks of transactions that ended, to run once their connection is back in the pool. */
  private due?: Callback[];

  constructor(private readonly policy: CallbackPolicy) {}

  /** Whether callbacks of transactions that ended wait to run. */
  get pending(): boolean {
    return this.due !== undefined;
  }

  /** Makes the callbacks of a transaction that ended with `status` due. */
  note(block: Block, status: CompletionStatus): void {
    if (!block.callbacks.pending) return;
    const due = block.callbacks.due(status);
    if (due.length > 0) (this.due ??= []).push(...due);
  }

  /** Runs the callbacks of the transactions that ended so far, now that their connection is back. */
  run(): Promise<void> {
    const due = this.due;
    if (due === undefined) return RESOLVED;
    this.due = undefined;
    return runCallbacks(due, this.policy);
  }

  /**
   * Runs `operation` (a commit, rollback or close), then the callbacks it made due, whether it
   * succeeded or not; its own error wins over a callback's.
   */
  async around(operation: () => Promise<void>): Promise<void> {
    try {
      await operation();
    } catch (error) {
      await this.run().catch(() => undefined);
      throw error;
    }
    await this.run();
  }
}
