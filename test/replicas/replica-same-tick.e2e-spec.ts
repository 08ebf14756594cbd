import { ConnectionAcquireTimeoutError, SessionFactory } from '../../src/index.js';
import { settle, within } from '../correctness/support-a.js';
import { createReplicaApp, type ReplicaApp } from './replica-app.js';
import { where } from './replica-item.js';

/**
 * Two read-only transactions that ask the replica's pool of one for a connection in the same
 * tick, while that connection is idle. The first holds it until the second has ended, so the
 * second must give up after `acquireTimeout`. pg-pool hands its idle client out on its next tick;
 * a check of its idle count alone took the second ask for one served at once, and it waited
 * without a bound.
 */
describe('Read replicas: connections asked for in the same tick', () => {
  let t: ReplicaApp;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createReplicaApp({ poolSize: 1, context: { acquireTimeout: 500 } });
    factory = t.app.get(SessionFactory);
  });
  // Bounded: a session that waits forever for the pool would keep app.close() waiting too.
  afterAll(() => within(t.close(), 'app.close()').catch(() => undefined));

  it('the one that finds no replica connection fails with ConnectionAcquireTimeoutError', async () => {
    expect((await factory.atomic(where, { readOnly: true })).replica).toBe(true); // now idle
    let secondEnded!: () => void;
    const gate = new Promise<void>((resolve) => (secondEnded = resolve));
    const first = factory.atomic(
      async (manager) => {
        const here = await where(manager);
        await gate;
        return here;
      },
      { readOnly: true },
    );
    const second = factory.atomic(where, { readOnly: true }).finally(() => secondEnded());
    const [one, two] = await Promise.all([
      settle(first, 'the first read-only transaction'),
      settle(second, 'the second read-only transaction'),
    ]);
    expect(one).toMatchObject({ ok: true, value: { replica: true } });
    expect(two).toMatchObject({ ok: false, name: ConnectionAcquireTimeoutError.name });
    await t.expectClean();
  });
});
