import type { Block } from './block.js';

/**
 * Runs a session's work one task at a time, in call order. Every wire operation of a session
 * takes a turn on a lane: a statement, a stream (until it closes), BEGIN, a whole NESTED block,
 * COMMIT, ROLLBACK. Work that a running task issues itself (TypeORM's transaction events, the
 * session hooks, the body of a NESTED block) runs on a child lane of that task, so it never waits
 * for the task it is part of. A child lane is closed when its task ends; work that reaches it
 * later goes to its parent.
 */
export class Lane {
  /** True once the task that owns this lane has ended. */
  closed = false;
  private running = false;
  /** Tasks waiting for their turn; made when the first one has to wait. */
  private waiting?: Array<() => void>;

  constructor(
    /** The lane of the task this lane belongs to; none for a session's own lane. */
    readonly parent?: Lane,
    /** The transaction or savepoint its statements belong to; none: the session's current one. */
    readonly block?: Block,
    /** True for a step's lane: part of an operation under way, it runs even as the session ends. */
    readonly step = false,
  ) {}

  /** Whether a task runs or waits. */
  get busy(): boolean {
    return this.running;
  }

  /** This lane, or the nearest open one above it. */
  get open(): Lane {
    return this.closed && this.parent ? this.parent.open : this;
  }

  /** Closes the lane (later work goes to its parent) and waits for the tasks already queued. */
  close(): Promise<void> {
    this.closed = true;
    return this.running ? this.run(() => Promise.resolve()) : Promise.resolve();
  }

  /**
   * Runs `task` once the tasks queued before it have settled. `failed` sees its rejection, and
   * may return the error to reject with instead (a clearer one).
   */
  run<T>(task: () => Promise<T>, failed?: (error: unknown) => unknown): Promise<T> {
    if (!this.running) {
      this.running = true;
      return this.track(task, failed);
    }
    return new Promise<void>((resolve) => (this.waiting ??= []).push(resolve)).then(() =>
      this.track(task, failed),
    );
  }

  private track<T>(task: () => Promise<T>, failed?: (error: unknown) => unknown): Promise<T> {
    let result: Promise<T>;
    try {
      result = task();
    } catch (error) {
      result = Promise.reject(error as Error);
    }
    return result.then(
      (value) => {
        this.next();
        return value;
      },
      (error: unknown) => {
        this.next();
        throw (failed && failed(error)) ?? error;
      },
    );
  }

  private next(): void {
    const resume = this.waiting?.shift();
    if (resume) resume();
    else this.running = false;
  }
}
