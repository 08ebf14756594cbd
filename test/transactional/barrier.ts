/** A one-shot gate: `wait()` resolves once `open()` was called (before or after). */
export class Gate {
  private release!: () => void;
  private readonly opened = new Promise<void>((resolve) => {
    this.release = resolve;
  });

  /** Lets every waiter through, now and later. */
  open(): void {
    this.release();
  }

  /** Resolves once the gate is open. */
  wait(): Promise<void> {
    return this.opened;
  }
}

/** A rendezvous of `parties` callers: each `arrive()` resolves once all of them have arrived. */
export class Barrier {
  private arrived = 0;
  private readonly gate = new Gate();

  constructor(private readonly parties: number) {}

  /** Waits until every party has arrived. */
  arrive(): Promise<void> {
    if (++this.arrived >= this.parties) this.gate.open();
    return this.gate.wait();
  }
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
