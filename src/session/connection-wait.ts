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
 * Waits at most `ms` (± 25 ms) for `connecting`. Resolves `undefined` on timeout, after arranging
 * for a connection that arrives later to be handed to `late` (which gives it back). Sessions call
 * it only when the pool is full. One shared timer watches every waiter, so a saturated pool costs
 * no timer per connect.
 */
export function within<T>(
  connecting: Promise<T>,
  ms: number,
  late: (value: T) => void,
): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    const waiter: Waiter = {
      deadline: Date.now() + ms,
      expire: () => {
        resolve(undefined);
        connecting.then(late, () => undefined);
      },
    };
    watch(waiter);
    connecting.then(
      (value) => {
        if (waiters.delete(waiter)) resolve(value);
      },
      (error: unknown) => {
        if (waiters.delete(waiter)) reject(error as Error);
      },
    );
  });
}

function watch(waiter: Waiter): void {
  waiters.add(waiter);
  if (timer === undefined) {
    timer = setInterval(sweep, TICK);
    timer.unref();
  }
}

/**
 * Calls `expire` once `ms` (± 25 ms) have passed, unless the returned function is called first.
 * On the same shared timer as `within`, and without a promise of its own: it watches every BEGIN.
 */
export function deadline(ms: number, expire: () => void): () => void {
  const waiter: Waiter = { deadline: Date.now() + ms, expire };
  watch(waiter);
  return () => void waiters.delete(waiter);
}
