import type { DataSource, QueryRunner } from 'typeorm';
import { poolHasRoom } from './transaction-dialect.js';

/**
 * Connects `runner`, waiting at most `ms` for the pool. Resolves `false` on timeout, after
 * arranging for a connection that arrives later to be given back with `giveBack`. When the pool
 * has an idle connection or room for a new one, no timer is armed at all.
 */
export async function connectWithin(
  runner: QueryRunner,
  dataSource: DataSource,
  ms: number,
  giveBack: () => Promise<void>,
): Promise<boolean> {
  if (poolHasRoom(dataSource)) {
    await runner.connect();
    return true;
  }
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
