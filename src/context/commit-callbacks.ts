import { ContextFrame } from './context-frame.js';
import { contextStorage } from './context-storage.js';

const RESOLVED = Promise.resolve();

/**
 * The `afterCommit` callbacks of one transaction, with a mark per open SAVEPOINT so that rolling
 * back to it drops the callbacks registered after it.
 */
export class CommitCallbacks {
  private callbacks: Array<() => unknown> = [];
  private marks: number[] = [];

  /** Whether any callback waits for the commit. */
  get pending(): boolean {
    return this.callbacks.length > 0;
  }

  /** Adds a callback for the current transaction. */
  add(callback: () => unknown): void {
    this.callbacks.push(callback);
  }

  /** Remembers where a SAVEPOINT starts. */
  mark(): void {
    this.marks.push(this.callbacks.length);
  }

  /** Forgets the innermost SAVEPOINT; `keep` false drops the callbacks registered inside it. */
  unmark(keep: boolean): void {
    const mark = this.marks.pop();
    if (!keep && mark !== undefined) this.callbacks.length = mark;
  }

  /** Drops every callback (the transaction rolled back). */
  clear(): void {
    this.callbacks = [];
    this.marks = [];
  }

  /**
   * Runs and forgets the callbacks, one at a time, outside any context: the transaction they
   * waited for is over, so a write through the context's session would begin a new one that
   * nobody commits. There `session()` fails clearly and `@Transactional()` commits on its own.
   * A failing callback is reported and never stops the next one.
   */
  run(report: (error: unknown) => void): Promise<void> {
    const callbacks = this.callbacks;
    this.clear();
    return callbacks.length === 0 ? RESOLVED : runEach(callbacks, report);
  }
}

async function runEach(callbacks: Array<() => unknown>, report: (error: unknown) => void) {
  const outside = new ContextFrame(undefined);
  for (const callback of callbacks) {
    try {
      await contextStorage.run(outside, callback);
    } catch (error) {
      report(error);
    }
  }
}
