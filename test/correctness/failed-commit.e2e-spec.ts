import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory, type Session } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { type Failure, settle, sleep } from './support-a.js';

/** A table of this file's own, with rows both transactions of a deadlock lock. */
const TABLE = 'failed_commit_rows';

/**
 * Makes the transaction of `victim` lose a deadlock (MariaDB, 1213) or fail a statement
 * (PostgreSQL, which aborts the transaction), after it wrote `victim_before`; the error is caught.
 */
async function breakTransaction(
  engine: Engine,
  victim: EntityManager,
  other: Session,
): Promise<unknown> {
  await victim.insert(Example, { text: 'victim_before' });
  if (engine.name === 'postgres') return settle(victim.query('SELECT 1/0'), 'the failing SELECT');
  // The other transaction modifies many rows (so InnoDB picks the victim) and holds row 1.
  await other.manager.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 1 OR id > 2`);
  await victim.query(`UPDATE ${TABLE} SET v = v + 10 WHERE id = 2`);
  const blocked = victim.query(`UPDATE ${TABLE} SET v = v + 10 WHERE id = 1`);
  blocked.catch(() => undefined);
  await sleep(200);
  // ... and the other now wants row 2, held by the victim: a deadlock.
  await other.manager.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 2`);
  const deadlock = await settle(blocked, 'the victim update');
  await other.commit();
  return deadlock;
}

describe.each(engines)(
  'after a failed commit the session begins a new transaction ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine);
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
      await t.dataSource.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await t.dataSource.query(`CREATE TABLE ${TABLE} (id INT PRIMARY KEY, v INT NOT NULL)`);
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM example');
      await t.dataSource.query(`DELETE FROM ${TABLE}`);
      const ids = Array.from({ length: 12 }, (_, i) => `(${i + 1}, 0)`).join(', ');
      await t.dataSource.query(`INSERT INTO ${TABLE} (id, v) VALUES ${ids}`);
    });
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await t.dataSource.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await t.close();
    });

    it('sessionContext.commit() fails, then a later failure of the context rolls back what came after', async () => {
      const seen: { broken?: unknown; commit?: unknown; txid?: string | null } = {};
      const other = factory.open();
      try {
        const result = await settle(
          factory.runInNewContext(async () => {
            const session = context.session();
            seen.broken = await breakTransaction(engine, session, other);
            seen.commit = await settle(context.commit(), 'sessionContext.commit()');
            await session.insert(Example, { text: 'after_failed_commit' });
            seen.txid = await txid(engine, session);
            throw new Error('the request fails later');
          }),
          'runInNewContext()',
          8000,
        );
        expect(result).toMatchObject({ ok: false, message: 'the request fails later' });
      } finally {
        await other.close();
      }
      expect(seen.broken).toMatchObject({ ok: false });
      expect(seen.commit).toMatchObject({ ok: false, name: 'TransactionAbortedError' });
      // The statement after the failed commit ran inside a transaction, which the failure undid.
      // (MariaDB's innodb_trx is a cache that concurrent readers keep stale: the rows prove it.)
      if (engine.name === 'postgres') expect(seen.txid).not.toBeNull();
      expect(await t.texts()).toEqual([]);
    });

    it('Session.commit() fails, then rollback() undoes what came after', async () => {
      const other = factory.open();
      const victim = factory.open();
      let commit: unknown;
      let id: string | null;
      try {
        await breakTransaction(engine, victim.manager, other);
        commit = await settle(victim.commit(), 'Session.commit()');
        await victim.manager.insert(Example, { text: 'after_failed_commit' });
        id = await txid(engine, victim.manager);
        await victim.rollback();
      } finally {
        await victim.close();
        await other.close();
      }
      expect(commit).toMatchObject({ ok: false, name: 'TransactionAbortedError' });
      if (engine.name === 'postgres') expect(id).not.toBeNull();
      expect(await t.texts()).toEqual([]);
    });

    if (engine.name === 'postgres') {
      it('a serialization failure at COMMIT: the next statements run in a new transaction', async () => {
        const first = factory.open({ isolationLevel: 'SERIALIZABLE' });
        const second = factory.open({ isolationLevel: 'SERIALIZABLE' });
        let commit: unknown;
        let id: string | null;
        try {
          // Write skew: each reads what the other writes; the second COMMIT must fail (40001).
          await first.manager.query("SELECT count(*) FROM example WHERE text = 'b'");
          await second.manager.query("SELECT count(*) FROM example WHERE text = 'a'");
          await first.manager.insert(Example, { text: 'a' });
          await second.manager.insert(Example, { text: 'b' });
          await first.commit();
          commit = await settle(second.commit(), 'the second COMMIT');
          await second.manager.insert(Example, { text: 'after_failed_commit' });
          id = await txid(engine, second.manager);
          await second.rollback();
        } finally {
          await first.close();
          await second.close();
        }
        expect((commit as Failure).error).toMatchObject({ driverError: { code: '40001' } });
        expect(id).not.toBeNull();
        expect(await t.texts()).toEqual(['a']);
      });
    }
  },
);
