import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { outcome, within } from '../correctness/support-a.js';

/**
 * Review of 11d21da (MySQL/MariaDB: "after a statement that commits implicitly (DDL, TRUNCATE,
 * repository.clear()), the session begins a new transaction at once").
 *
 * MariaDB commits the open transaction implicitly BEFORE it runs a DDL statement, even when that
 * statement then fails (checked by hand on 10.11: `START TRANSACTION; INSERT ...; DROP TABLE
 * missing;` -> ERROR 1051, and the INSERT is committed). The fix only looks at the OK packet of a
 * statement that succeeded, so after a FAILED DDL the session stays in autocommit mode: every
 * later statement commits on its own and a rollback of the unit undoes nothing.
 */
const mariadb = engines.filter((engine) => engine.name === 'mariadb');
const MISSING = 'r5_review_no_such_table';

for (const engine of mariadb)
  describe(`review: implicit commits on MySQL/MariaDB (${engine.name})`, () => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine);
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
      await t.dataSource.query(`DROP TABLE IF EXISTS ${MISSING}`);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterAll(() => t.close());

    it('a DDL statement that FAILS (and so commits implicitly) does not leave later statements autocommitting', async () => {
      // Expected: the server committed 'before_ddl' (nobody can undo that), but 'after_ddl' runs
      // in a transaction of the unit and is rolled back when the unit fails, exactly as after a
      // DDL that succeeded (docs/sessions.md "DDL and TRUNCATE on MySQL/MariaDB").
      const result = await within(
        outcome(
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'before_ddl' });
            // e.g. a cleanup step that tolerates a table that is already gone
            await session.query(`DROP TABLE ${MISSING}`).catch(() => undefined);
            await session.insert(Example, { text: 'after_ddl' });
            throw new Error('the job fails after the failed DDL');
          }),
        ),
        'runInNewContext()',
      );
      expect(result).toMatchObject({ ok: false, message: 'the job fails after the failed DDL' });
      // Actual: ['after_ddl', 'before_ddl'] - the insert after the failed DDL committed on its own.
      expect(await t.texts()).toEqual(['before_ddl']);
      await t.expectClean();
    });

    it('LOCK TABLES in a session is not silently undone by the START TRANSACTION the session sends after it', async () => {
      // docs/sessions.md lists LOCK TABLES among the statements that commit implicitly, and the
      // session "begins a new transaction ... at once". On MySQL/MariaDB START TRANSACTION also
      // releases the table locks (UNLOCK TABLES), so the lock the code just asked for is gone
      // before its next line runs, and other connections write to a table it believes it holds
      // exclusively. Expected: either LOCK TABLES is refused with a clear error, or the lock holds
      // (another connection cannot write meanwhile) - never a lock silently released.
      let locked: { ok: boolean } = { ok: false };
      let other: { ok: boolean } = { ok: false };
      await within(
        factory.runInNewContext(async () => {
          const session = context.session();
          locked = await outcome(session.query('LOCK TABLES example WRITE'));
          const runner = t.dataSource.createQueryRunner();
          try {
            await runner.query('SET SESSION lock_wait_timeout = 1'); // bounded: 1 s at most
            other = await outcome(runner.query("INSERT INTO example (text) VALUES ('other')"));
            await runner.query('SET SESSION lock_wait_timeout = DEFAULT');
          } finally {
            await runner.release();
          }
          if (locked.ok) await session.query('UNLOCK TABLES').catch(() => undefined);
        }),
        'LOCK TABLES in a context',
        10000,
      );
      // Actual: locked ok, other ok - the insert of another connection went through at once.
      expect({ locked: locked.ok, otherWroteMeanwhile: locked.ok && other.ok }).not.toEqual({
        locked: true,
        otherWroteMeanwhile: true,
      });
      await t.expectClean();
    });
  });
