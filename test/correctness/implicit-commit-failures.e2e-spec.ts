import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { outcome, within } from './support-a.js';

/**
 * MySQL/MariaDB commit the open transaction implicitly BEFORE they run a DDL statement, even when
 * that statement then fails (`START TRANSACTION; INSERT ...; DROP TABLE missing;` -> ERROR 1051,
 * and the INSERT is committed). And `LOCK TABLES` commits too, while the `START TRANSACTION` a
 * session sends after it releases the locks.
 */
const mariadb = engines.filter((engine) => engine.name === 'mariadb');
const MISSING = 'implicit_commit_no_such_table';

/** Whether the server says a transaction is open on the session's connection. */
async function inTransaction(manager: EntityManager): Promise<boolean> {
  const rows: Array<{ open: number | string }> = await manager.query(
    'SELECT @@in_transaction AS open',
  );
  return Number(rows[0]?.open) === 1;
}

for (const engine of mariadb)
  describe(`implicit commits of failed DDL and LOCK TABLES (${engine.name})`, () => {
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
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('a DDL statement that FAILS (and so commits implicitly) does not leave later statements autocommitting', async () => {
      // The server committed 'before_ddl' (nobody can undo that), but 'after_ddl' runs in a new
      // transaction of the unit, on the same connection, and is rolled back when the unit fails.
      const seen: { before?: string; after?: string; open?: boolean } = {};
      const result = await within(
        outcome(
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'before_ddl' });
            seen.before = await backendId(engine, session);
            // e.g. a cleanup step that tolerates a table that is already gone
            await session.query(`DROP TABLE ${MISSING}`).catch(() => undefined);
            seen.open = await inTransaction(session);
            seen.after = await backendId(engine, session);
            await session.insert(Example, { text: 'after_ddl' });
            throw new Error('the job fails after the failed DDL');
          }),
        ),
        'runInNewContext()',
      );
      expect(result).toMatchObject({ ok: false, message: 'the job fails after the failed DDL' });
      expect(seen.open).toBe(true);
      expect(seen.after).toBe(seen.before);
      expect(await t.texts()).toEqual(['before_ddl']);
    });

    it('a failed ordinary statement leaves the transaction as it was: its earlier writes still roll back', async () => {
      const result = await within(
        outcome(
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'before_failure' });
            await session.query(`SELECT * FROM ${MISSING}`).catch(() => undefined);
            await session.insert(Example, { text: 'after_failure' });
            throw new Error('the job fails');
          }),
        ),
        'runInNewContext()',
      );
      expect(result).toMatchObject({ ok: false, message: 'the job fails' });
      expect(await t.texts()).toEqual([]);
    });

    it('a block with retry whose DDL committed implicitly is not re-run on a deadlock', async () => {
      let attempts = 0;
      const result = await within(
        outcome(
          factory.atomic(
            async (manager: EntityManager) => {
              attempts++;
              await manager.insert(Example, { text: `before_ddl ${attempts}` });
              await manager.query(`DROP TABLE IF EXISTS ${MISSING}`); // commits implicitly
              await manager.query(
                "BEGIN NOT ATOMIC SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'simulated deadlock'; END",
              );
            },
            { retry: 2 },
          ),
        ),
        'atomic() with retry',
      );
      expect({ attempts, ok: result.ok }).toEqual({ attempts: 1, ok: false });
      expect(result).toMatchObject({ name: 'PartlyCommittedError' });
      expect(await t.texts()).toEqual(['before_ddl 1']);
    });

    it('LOCK TABLES in a session is refused clearly, before it commits anything; another connection is not blocked', async () => {
      // On MySQL/MariaDB LOCK TABLES commits the transaction, and the START TRANSACTION the
      // session sends after it releases the locks: the lock would be gone before the next line.
      // So it is refused (nothing is sent), and the transaction goes on untouched.
      let locked: Awaited<ReturnType<typeof outcome>> = { ok: true, value: undefined };
      let other: { ok: boolean } = { ok: false };
      let stillOpen = false;
      const result = await within(
        outcome(
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'before_lock' });
            locked = await outcome(session.query('LOCK TABLES example WRITE'));
            const runner = t.dataSource.createQueryRunner();
            try {
              await runner.query('SET SESSION lock_wait_timeout = 1'); // bounded: 1 s at most
              other = await outcome(runner.query("INSERT INTO example (text) VALUES ('other')"));
              await runner.query('SET SESSION lock_wait_timeout = DEFAULT');
            } finally {
              await runner.release();
            }
            stillOpen = await inTransaction(session);
            throw new Error('the job fails after the refused LOCK TABLES');
          }),
        ),
        'LOCK TABLES in a context',
        10000,
      );
      expect(locked).toMatchObject({
        ok: false,
        name: 'TransactionNotAllowedError',
        message: expect.stringMatching(/^LOCK TABLES cannot run inside a session's transaction/),
      });
      expect(other.ok).toBe(true);
      expect(result).toMatchObject({
        ok: false,
        message: 'the job fails after the refused LOCK TABLES',
      });
      expect(stillOpen).toBe(true);
      // 'before_lock' was not committed by the refused statement: the unit's failure undid it.
      expect(await t.texts()).toEqual(['other']);
    });
  });
