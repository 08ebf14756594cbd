/**
 * (From review 24.) In a test of the testing kit, REQUIRES_NEW blocks with a `timeout`
 * that expires while they wait for the test connection's turn fail at once; the stopped leases go
 * back when the turn comes, later units run, tx.rollback() settles and leaves nothing.
 */
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { checkedOut, enginesAndSqlite, idleInTransaction } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { outcome, sleep, within } from '../correctness/support-a.js';

describe.each(enginesAndSqlite)(
  'testing kit: timed blocks waiting for the turn ($name)',
  (engine) => {
    let t: TestApp;
    beforeEach(async () => {
      t = await createTestApp(engine, { poolSize: 2, context: { acquireTimeout: 60_000 } });
    });
    afterEach(() => t.close());

    it('a timed block waiting for the turn times out at once; rollback settles; nothing left', async () => {
      const context = t.app.get(SessionContext);
      const factory = t.app.get(SessionFactory);
      const tx = await TestTransaction.start(t.app);
      const holder = factory.open();
      await holder.manager.insert(Example, { text: 'held' });
      const blocks = [0, 1, 2].map((i) =>
        outcome(
          factory.atomic((m) => m.insert(Example, { text: `timed ${i}` }), {
            propagation: Propagation.REQUIRES_NEW,
            timeout: 150,
          }),
        ),
      );
      const results = await within(Promise.all(blocks), 'blocks');
      expect(results.map((r) => (r.ok ? 'ok' : r.name))).toEqual([
        'TransactionTimeoutError',
        'TransactionTimeoutError',
        'TransactionTimeoutError',
      ]);
      await sleep(50);
      await within(holder.commit(), 'commit holder');
      await within(holder.close(), 'close holder');
      await within(
        factory.runInNewContext(() => context.session().insert(Example, { text: 'after' })),
        'after',
      );
      expect(await t.texts()).toEqual(['after', 'held']);
      await within(tx.rollback(), 'rollback');
      expect(await t.rows()).toBe(0);
      await eventually(() => checkedOut(t.dataSource) === 0);
      expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
    });
  },
);
