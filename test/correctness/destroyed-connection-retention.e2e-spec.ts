import { Injectable } from '@nestjs/common';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Propagation, SessionContext, Transactional } from '../../src/index.js';
import { TransactionTimeoutError } from '../../src/errors/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { sleep } from '../correctness/support-a.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** The managers of the units that timed out: reachable only while their unit is. */
const timedOut: Array<WeakRef<object>> = [];
let sleepSql = '';

@Injectable()
class Work {
  constructor(readonly context: SessionContext) {}

  /** Holds the pool's one connection until its timeout drops it (connection destroyed). */
  @Transactional({ propagation: Propagation.REQUIRES_NEW, timeout: 300 })
  async slow() {
    const manager = this.context.session();
    timedOut.push(new WeakRef(manager));
    await manager.query(sleepSql);
  }

  /** Waits in the pool's queue for the connection `slow()` holds. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async quick() {
    await this.context.session().query('SELECT 1');
  }
}

async function survivors(refs: Array<WeakRef<object>>, rounds = 50): Promise<number> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    collectGarbage();
    if (refs.every((ref) => ref.deref() === undefined)) return 0;
  }
  return refs.filter((ref) => ref.deref() !== undefined).length;
}

/**
 * Sessions ask for, give back and drop pooled connections outside the library's
 * AsyncLocalStorage context: a connection the pool opens keeps the context its socket was made
 * in for its whole life. Dropping one (a `timeout`, a lost connection, a failed ROLLBACK) while
 * another ask waits makes mysql2 open the replacement at once (`process.nextTick(getConnection)`
 * in `releaseConnection` of a removed connection), in the context of whoever dropped it. Before
 * the fix: on MariaDB the timed-out unit stayed reachable (1 survivor).
 */
describe.each(engines)(
  'a unit whose connection was destroyed is not kept by the pool ($name)',
  (engine) => {
    let app: TestApp;

    afterEach(async () => {
      await app?.close();
    });

    it('a timed-out unit that dropped its connection while another ask waited is not kept once done', async () => {
      sleepSql = engine.sleepSql(2);
      timedOut.length = 0;
      app = await createTestApp(engine, { providers: [Work], poolSize: 1 });
      const work = app.app.get(Work);
      const slow = work.slow().then(
        () => 'resolved',
        (error: unknown) => (error instanceof TransactionTimeoutError ? 'timeout' : String(error)),
      );
      await sleep(100); // slow() holds the one connection
      const quick = work.quick(); // queued in the pool
      expect(await slow).toBe('timeout');
      await quick;
      await app.expectClean();
      expect(timedOut).toHaveLength(1);
      // The connection the pool opened for quick() is idle in the pool now: it must not keep slow()'s unit.
      expect(await survivors(timedOut)).toBe(0);
    });
  },
);
