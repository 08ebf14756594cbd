import type { ConnectionLender } from './pooled-connection.js';

/** One test transaction: when it ran (`performance.now()`), and who lent its connections. */
interface Run {
  start: number;
  end: number;
  lenders: ReadonlyMap<string, ConnectionLender>;
}

/**
 * Who lends an app's sessions connections instead of the pools: the test transactions of the
 * testing kit, one at a time. Work stays with the test transaction it began in (a unit of work or
 * a session born while it ran), also once that one ended: an ended test's lenders refuse, so work
 * a test left running never takes a pooled connection and commits for real. Work born before a
 * test transaction or between two uses the running one's, as it always did.
 */
export class Lenders {
  private readonly runs: Run[] = [];

  /** Whether a test transaction lends connections now. */
  get active(): boolean {
    return this.runs.at(-1)?.end === Infinity;
  }

  /** A test transaction begins: `lenders` by data source name, from now on. */
  begin(lenders: ReadonlyMap<string, ConnectionLender>): void {
    this.runs.push({ start: performance.now(), end: Infinity, lenders });
  }

  /** The running test transaction ended: work born in it gets `refusal` from now on. */
  end(refusal: ConnectionLender): void {
    const run = this.runs.at(-1);
    if (run === undefined || run.end !== Infinity) return;
    run.end = performance.now();
    run.lenders = new Map([...run.lenders.keys()].map((name) => [name, refusal]));
  }

  /** Who lends `dataSource` connections to work born at `born`; none: its pool. */
  lender(dataSource: string, born: number): ConnectionLender | undefined {
    const runs = this.runs;
    if (runs.length === 0) return undefined;
    for (let i = runs.length - 1; i >= 0; i--) {
      const run = runs[i]!;
      if (born >= run.start && born < run.end) return run.lenders.get(dataSource);
    }
    const last = runs.at(-1)!;
    return last.end === Infinity ? last.lenders.get(dataSource) : undefined;
  }
}
