/**
 * (From review 24.) A factory session's close() racing the arrival of the pool's only
 * connection (pg-pool hands it over synchronously in release()), 0 to 8 microtasks apart, both
 * orders: the connection goes back exactly once, the pool serves the next session.
 */
import type { Session } from '../../src/index.js';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { checkedOut, engines, idleInTransaction, waitingForPool } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { outcome, within } from './support-a.js';

interface PgPoolLike {
  connect(): Promise<{ release(error?: Error): void }>;
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

describe.each(engines.filter((e) => e.name === 'postgres'))(
  "a session's close() racing its connection's arrival ($name)",
  (engine) => {
    let t: TestApp;
    let factory: SessionFactory;

    beforeEach(async () => {
      t = await createTestApp(engine, { poolSize: 1, context: { acquireTimeout: 60_000 } });
      t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    afterEach(async () => {
      await t.close();
    });

    for (const order of ['release-then-close', 'close-then-release'] as const) {
      for (const ticks of [0, 1, 2, 3, 5, 8]) {
        it(`${order}, ${ticks} microtasks apart`, async () => {
          const pool = (t.dataSource.driver as unknown as { master: PgPoolLike }).master;
          const client = await pool.connect();
          const session: Session = factory.open();
          const insert = outcome(session.manager.insert(Example, { text: 'raced' }));
          await eventually(() => pool.waitingCount === 1);
          const pause = async () => {
            for (let i = 0; i < ticks; i++) await Promise.resolve();
          };
          let closing: Promise<void>;
          if (order === 'release-then-close') {
            client.release();
            await pause();
            closing = session.close();
          } else {
            closing = session.close();
            await pause();
            client.release();
          }
          await within(
            closing.catch(() => undefined),
            'close',
          );
          const result = await within(insert, 'insert');
          expect(result.ok).toBe(false);
          await eventually(() => checkedOut(t.dataSource) === 0);
          expect(pool.totalCount).toBe(1);
          expect(pool.idleCount).toBe(1);
          expect(waitingForPool(t.dataSource)).toBe(0);
          expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
          // the pool serves the next session
          const next = factory.open();
          await within(next.manager.insert(Example, { text: 'next' }), 'next');
          await within(next.commit(), 'commit');
          await within(next.close(), 'close next');
          expect(await t.texts()).toEqual(['next']);
          expect(checkedOut(t.dataSource)).toBe(0);
        });
      }
    }
  },
);
