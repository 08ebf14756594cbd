const RESOLVED = Promise.resolve();

/**
 * The transaction blocks running in one unit of work now (owned by its `UnitOfWork`), counted
 * once the interceptor sends the unit's values one by one (`@Sse()`, rpc, ws; it makes this
 * then), so that a value's commit never splits a block.
 */
export class OpenBlocks {
  /** Transaction blocks running in the unit now. */
  private count = 0;
  /** Resolves `noneOpen()` once the last open block ended. */
  private ended?: { promise: Promise<void>; resolve: () => void };

  /** Runs a transaction block (`run` starts it), counted as open in the unit until it settles. */
  run<T>(run: () => Promise<T>): Promise<T> {
    this.count++;
    let result: Promise<T>;
    try {
      result = run();
    } catch (error) {
      this.blockEnded();
      throw error;
    }
    return result.finally(() => this.blockEnded());
  }

  /** Whether a counted transaction block (see `run()`) is running in the unit. */
  get any(): boolean {
    return this.count > 0;
  }

  /** Resolves once no counted block is open (check `any` again: another may begin meanwhile). */
  noneOpen(): Promise<void> {
    if (this.count === 0) return RESOLVED;
    if (this.ended === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      this.ended = { promise, resolve };
    }
    return this.ended.promise;
  }

  private blockEnded(): void {
    if (--this.count > 0) return;
    const waiting = this.ended;
    this.ended = undefined;
    waiting?.resolve();
  }
}
