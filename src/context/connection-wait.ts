import type { QueryRunner } from 'typeorm';

/** How often the one shared timer looks for waiters past their deadline (ms). */
const TICK = 25;

interface Waiter {
  deadline: number;
  expire(): void;
}

const waiters = new Set<Waiter>();
let timer: NodeJS.Timeout | undefined;

function sweep(): void {
  const now = Date.now();
  for (const waiter of waiters) {
    if (waiter.deadline > now) continue;
    waiters.delete(waiter);
    waiter.expire();
  }
  if (waiters.size === 0) {
    clearInterval(timer);
    timer = undefined;
  }
}

/**
 * Connects `runner`, waiting at most `ms` (± 25 ms) for the pool. Resolves `false` on timeout,
 * after arranging for a connection that arrives later to be given back with `giveBack`. Sessions
 * call it only when the pool is full (`poolHasRoom()`). One shared timer watches every waiter, so
 * a saturated pool costs no timer per connect.
 */
export function connectWithin(
  runner: QueryRunner,
  ms: number,
  giveBack: () => Promise<void>,
): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const connecting = runner.connect();
    const waiter: Waiter = {
      deadline: Date.now() + ms,
      expire: () => {
        resolve(false);
        connecting.then(giveBack, () => undefined);
      },
    };
    waiters.add(waiter);
    if (timer === undefined) {
      timer = setInterval(sweep, TICK);
      timer.unref();
    }
    connecting.then(
      () => {
        if (waiters.delete(waiter)) resolve(true);
      },
      (error: unknown) => {
        if (waiters.delete(waiter)) reject(error as Error);
      },
    );
  });
}
