/**
 * Runs one connection's statements one at a time, in call order. pg@8 queues overlapping
 * `client.query()` calls itself but deprecates it (pg@9 drops it), so a session that shares its
 * connection between `Promise.all` branches must queue them itself. Costs one promise per
 * statement when nothing overlaps.
 */
export class StatementQueue {
  private readonly waiting: Array<() => void> = [];
  private running = false;

  /** Whether a statement is in flight. */
  get busy(): boolean {
    return this.running;
  }

  /** Runs `work` once the statement in flight (and those queued before) settled. */
  run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running) {
      return new Promise<void>((resolve) => this.waiting.push(resolve)).then(() =>
        this.track(work),
      );
    }
    this.running = true;
    return this.track(work);
  }

  private track<T>(work: () => Promise<T>): Promise<T> {
    let running: Promise<T>;
    try {
      running = work();
    } catch (error) {
      running = Promise.reject(error as Error);
    }
    return running.then(
      (value) => {
        this.next();
        return value;
      },
      (error: unknown) => {
        this.next();
        throw error;
      },
    );
  }

  private readonly next = (): void => {
    const resume = this.waiting.shift();
    if (resume) resume();
    else this.running = false;
  };
}
