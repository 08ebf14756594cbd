import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';

/** A callback waiting for a transaction to end. */
export type Callback = () => unknown;

const NONE: readonly Callback[] = [];

/** The `afterCommit` callbacks one transaction or savepoint collected. */
export class TransactionCallbacks {
  private afterCommit?: Callback[];

  /** Whether any callback waits. */
  get pending(): boolean {
    return this.afterCommit !== undefined;
  }

  /** Adds a callback that runs after the transaction commits. */
  add(callback: Callback): void {
    (this.afterCommit ??= []).push(callback);
  }

  /** Takes over a released savepoint's callbacks: they now wait for this transaction. */
  adopt(child: TransactionCallbacks): void {
    if (child.afterCommit) for (const callback of child.afterCommit) this.add(callback);
  }

  /** The callbacks to run now that the transaction committed. */
  committed(): readonly Callback[] {
    return this.afterCommit ?? NONE;
  }
}

/**
 * Runs callbacks one at a time, outside any context: the transaction they waited for is over, so
 * a write through a context's session would begin a new one that nobody commits. There
 * `session()` fails clearly and `@Transactional()` commits on its own. A failing callback is
 * reported and never stops the next one.
 */
export async function runCallbacks(
  callbacks: readonly Callback[],
  report: (error: unknown) => void,
): Promise<void> {
  if (callbacks.length === 0) return;
  const outside = new ContextFrame(undefined);
  for (const callback of callbacks) {
    try {
      await contextStorage.run(outside, callback);
    } catch (error) {
      report(error);
    }
  }
}
