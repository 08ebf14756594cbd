import { ConnectionAcquireTimeoutError, SessionContext, SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { engines, sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 800;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Attack: `TestTransaction.start()` now waits at most acquireTimeout for its connection. A pool
 * (or SQLite's one connection) busy for less than that must still start; busy for longer, it must
 * fail clearly and leave nothing checked out once the holder ends.
 */
describe.each([...engines, ...sqliteEngines])(
  'SQLite review 2: TestTransaction.start() on a busy pool ($name)',
  (engine) => {
    let t: TestApp;
    let factory: SessionFactory;
    let context: SessionContext;

    beforeEach(async () => {
      t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE }, poolSize: 1 });
      factory = t.app.get(SessionFactory);
      context = t.app.get(SessionContext);
    });

    afterEach(() => t.close());

    const holdFor = (ms: number) =>
      factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'holder' });
        await sleep(ms);
      });

    it('starts once the connection frees up within acquireTimeout', async () => {
      const holder = holdFor(250);
      await sleep(30);
      const tx = await TestTransaction.start(t.app);
      await holder;
      await factory.runInNewContext(() => context.session().insert(Example, { text: 'in test' }));
      expect(await t.texts()).toEqual(['holder', 'in test']);
      await tx.rollback();
      expect(await t.texts()).toEqual(['holder']);
      await t.expectClean();
    });

    it('fails with ConnectionAcquireTimeoutError when it never frees up, and leaks nothing', async () => {
      const holder = holdFor(ACQUIRE + 400);
      await sleep(30);
      const failed = await TestTransaction.start(t.app).catch((error: Error) => error);
      expect(failed).toBeInstanceOf(ConnectionAcquireTimeoutError);
      expect((failed as Error).message).toContain('TestTransaction.start()');
      await holder;
      await t.expectClean();
      // The next start works: nothing of the failed one is left.
      const tx = await TestTransaction.start(t.app);
      await tx.rollback();
      await t.expectClean();
    });
  },
);
