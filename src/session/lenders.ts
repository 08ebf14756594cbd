import type { ConnectionLender } from './pooled-connection.js';

/**
 * One test transaction, as the work born in it knows it: who lends its connections (refusing,
 * once it ended). Work keeps the one it was born in by identity, never by clock.
 */
export class TestRun {
  constructor(
    /** Lenders by data source name. */
    public lenders: ReadonlyMap<string, ConnectionLender>,
  ) {}
}

/**
 * Who lends an app's sessions connections instead of the pools: the test transactions of the
 * testing kit, one at a time. Work stays with the test transaction it was born in (a unit of work
 * records the one running when it began, or inherits its parent unit's; a session its unit's),
 * also once that one ended: an ended test's lenders refuse, so work a test left running never
 * takes a pooled connection and commits for real, nor joins a later test. Work born outside any
 * test transaction uses the running one's, as it always did.
 */
export class Lenders {
  private running?: TestRun;

  /** Whether a test transaction lends connections now. */
  get active(): boolean {
    return this.running !== undefined;
  }

  /** The test transaction running now (the one work born now belongs to), if any. */
  get current(): TestRun | undefined {
    return this.running;
  }

  /** A test transaction begins: `lenders` by data source name, from now on. */
  begin(lenders: ReadonlyMap<string, ConnectionLender>): void {
    this.running = new TestRun(lenders);
  }

  /** The running test transaction ended: work born in it gets `refusal` from now on. */
  end(refusal: ConnectionLender): void {
    const run = this.running;
    if (run === undefined) return;
    this.running = undefined;
    run.lenders = new Map([...run.lenders.keys()].map((name) => [name, refusal]));
  }

  /** Who lends `dataSource` connections to work born in `run`; none: its pool. */
  lender(dataSource: string, run: TestRun | undefined): ConnectionLender | undefined {
    return (run ?? this.running)?.lenders.get(dataSource);
  }
}
