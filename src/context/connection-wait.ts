import type { QueryRunner } from 'typeorm';

/**
 * Connects `runner`, waiting at most `ms` for the pool. Resolves `false` on timeout, after
 * arranging for a connection that arrives later to be given back with `giveBack`. Sessions call
 * it only when the pool is full (`poolHasRoom()`), so the common path arms no timer.
 */
export async function connectWithin(
  runner: QueryRunner,
  ms: number,
  giveBack: () => Promise<void>,
): Promise<boolean> {
  const connecting = runner.connect();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), ms);
  });
  try {
    if ((await Promise.race([connecting, expired])) !== 'expired') return true;
    connecting.then(giveBack, () => undefined);
    return false;
  } finally {
    clearTimeout(timer);
  }
}
