import { callbackChannel, traceCallback } from '../diagnostics/channels.js';
import { CallbackError } from '../errors/callback.error.js';
import { messages } from '../errors/messages.js';
import type { FrameUnit, SessionFrames } from './session-frames.js';

/** A callback due now that its transaction ended, with the name it was registered by. */
export interface Callback {
  name: 'afterCommit' | 'afterRollback' | 'afterCompletion';
  run(): unknown;
  /** The unit it was registered in: its read-only work keeps to the primaries that unit used. */
  follows?: FrameUnit;
}

/** How a transaction (or the savepoint a callback was registered in) ended. */
export type CompletionStatus = 'committed' | 'rolled back';

/** When a callback runs: after a commit, after a rollback, or after either. */
type Trigger = 'commit' | 'rollback' | 'always';

interface Entry {
  on: Trigger;
  /** The name it was registered by (a rolled-back savepoint's entries become `always`). */
  name: Callback['name'];
  run: (status: CompletionStatus) => unknown;
  follows?: FrameUnit;
}

const NONE: readonly Callback[] = [];
const NAMES = {
  commit: 'afterCommit',
  rollback: 'afterRollback',
  always: 'afterCompletion',
} as const;

/**
 * The callbacks one transaction or savepoint collected, in registration order: `afterCommit`,
 * `afterRollback` and `afterCompletion`. A released savepoint hands its callbacks to the
 * enclosing transaction; one rolled back to hands over only those that wait for a rollback, now
 * due whatever the transaction's own outcome.
 */
export class TransactionCallbacks {
  private entries?: Entry[];

  /** Whether any callback waits. */
  get pending(): boolean {
    return this.entries !== undefined;
  }

  /**
   * Adds `callback` for `on`, registered in the unit `follows`; `afterCompletion` callbacks get
   * the status.
   */
  add(on: Trigger, callback: (status: CompletionStatus) => unknown, follows?: FrameUnit): void {
    (this.entries ??= []).push({ on, name: NAMES[on], run: callback, follows });
  }

  /** Takes over a released savepoint's callbacks: they now wait for this transaction. */
  adopt(child: TransactionCallbacks): void {
    if (child.entries) (this.entries ??= []).push(...child.entries);
  }

  /** Takes over what a savepoint rolled back to owes: its rollback callbacks, due at the end. */
  adoptRolledBack(child: TransactionCallbacks): void {
    for (const entry of child.entries ?? []) {
      if (entry.on === 'commit') continue;
      (this.entries ??= []).push({ ...entry, on: 'always', run: () => entry.run('rolled back') });
    }
  }

  /** The callbacks due now that the transaction ended with `status`, in registration order. */
  due(status: CompletionStatus): readonly Callback[] {
    if (this.entries === undefined) return NONE;
    const skip: Trigger = status === 'committed' ? 'rollback' : 'commit';
    return this.entries
      .filter((entry) => entry.on !== skip)
      .map((entry) => ({
        name: entry.name,
        run: () => entry.run(status),
        follows: entry.follows,
      }));
  }
}

/** What to do with callbacks' errors. */
export interface CallbackPolicy {
  /** Receives every error of a callback (the later callbacks still run). */
  reportError(message: string, error: unknown): void;
  /** The context the callbacks run in (see `runCallbacks()`). */
  frames: SessionFrames;
  /** Whether the first error is thrown once every callback ran (`callbackErrors: 'throw'`). */
  throwErrors?: boolean;
}

/**
 * Runs callbacks one at a time, outside any context: the transaction they waited for is over, so
 * a write through a context's session would begin a new one that nobody commits. There
 * `session()` fails clearly and `@Transactional()` commits on its own; read-only transactions
 * still run on the primaries the callback's unit used, so they see what it wrote (with read
 * replicas). A failing callback is
 * reported and never stops the next one; with `throwErrors`, the first error is thrown at the end
 * (wrapped in `CallbackError`: the transaction's outcome stands).
 */
export async function runCallbacks(
  callbacks: readonly Callback[],
  policy: CallbackPolicy,
): Promise<void> {
  let first: { error: unknown } | undefined;
  for (const callback of callbacks) {
    try {
      const frames = policy.frames;
      const frame = callback.follows ? frames.after(callback.follows) : frames.outside;
      await frames.run(frame, () =>
        callbackChannel.hasSubscribers
          ? traceCallback({ name: callback.name }, async () => callback.run())
          : callback.run(),
      );
    } catch (error) {
      policy.reportError(`${callback.name} callback failed`, error);
      first ??= { error };
    }
  }
  if (first && policy.throwErrors) {
    throw new CallbackError(messages.callbackFailed(), { cause: first.error });
  }
}
