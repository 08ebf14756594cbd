const RESOLVED = Promise.resolve();

/** Values a streamed response emitted in one tick, sent together after one commit. */
export interface Batch {
  readonly values: unknown[];
  /** Taken by the source's completion in the same tick: they go out with the unit's end. */
  taken: boolean;
  /** Queued when no other value waited: taken, nothing is left to wait for. */
  readonly first: boolean;
}

/**
 * The steps of a response sent value by value (for the `AutoCommitInterceptor`): each runs once
 * the ones queued before it ran, so values go out in order, each behind its own commit.
 */
export class ValueQueue {
  /** Values behind a commit, in order; undefined while none waits. */
  private sending?: Promise<unknown>;

  /** Whether no step waits. */
  get idle(): boolean {
    return this.sending === undefined;
  }

  /** Runs `step` after the values waiting for a commit (at once when none waits and `now`). */
  add(step: () => unknown, now = false): void {
    if (now && this.sending === undefined) return void step();
    const queued = (this.sending ?? RESOLVED).then(step);
    this.sending = queued;
    void queued.then(() => {
      if (this.sending === queued) this.sending = undefined;
    });
  }
}
