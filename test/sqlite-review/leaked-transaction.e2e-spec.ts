import { SessionContext, SessionFactory } from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/**
 * Attack: plain TypeORM code that leaves a transaction open on the one connection when it gives
 * its turn back. The docs promise that giving a turn back "leaves the connection as the next turn
 * expects it: no transaction open, writable" (WriterTurn), so the next turn must not run inside it.
 */
describe.each(sqliteEngines)(
  'SQLite review: a turn given back with a transaction open ($name)',
  (engine) => {
    let t: TestApp;

    beforeEach(async () => {
      t = await createTestApp(engine, { context: { acquireTimeout: 1000 } });
    });

    afterEach(() => t.close());

    /** Writes `text` in a unit of work of its own (a session's transaction, its own turn). */
    const inSession = (text: string) =>
      t.app.get(SessionFactory).runInNewContext(async () => {
        await t.app.get(SessionContext).session().insert(Example, { text });
      });

    it('a plain runner released without commit/rollback: the next autocommit write and session both stand', async () => {
      const runner = t.dataSource.createQueryRunner();
      await runner.startTransaction();
      await runner.manager.insert(Example, { text: 'forgotten' });
      await runner.release(); // forgot commitTransaction(): TypeORM discards the transaction

      await t.dataSource.query("INSERT INTO example (text) VALUES ('autocommit')");
      await inSession('session');

      expect(await t.texts()).toEqual(['autocommit', 'session']);
    });

    it("a plain dataSource.query('BEGIN') is not left open for the next turn", async () => {
      await t.dataSource.query('BEGIN');
      await t.dataSource.query("INSERT INTO example (text) VALUES ('autocommit')");
      await inSession('session');
      expect(await t.texts()).toEqual(['autocommit', 'session']);
    });

    it('a user-sent COMMIT inside a session: the request fails or commits, the next turns work', async () => {
      const factory = t.app.get(SessionFactory);
      const context = t.app.get(SessionContext);
      const outcome = await factory
        .runInNewContext(async () => {
          await context.session().insert(Example, { text: 'before commit' });
          await context.session().query('COMMIT');
          await context.session().insert(Example, { text: 'after commit' });
        })
        .then(
          () => 'ok',
          (error: Error) => error.name,
        );
      expect(typeof outcome).toBe('string');
      // Whatever happened to that unit, the connection is usable by the next ones.
      await inSession('next');
      await t.dataSource.query("INSERT INTO example (text) VALUES ('plain')");
      expect(await t.texts()).toEqual(expect.arrayContaining(['next', 'plain']));
      await t.expectClean();
    });
  },
);
