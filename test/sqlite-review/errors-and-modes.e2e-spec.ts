import { SessionContext, SessionFactory } from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 400;

/** The error code of a failed SQLite statement, wrapped by TypeORM or not. */
function codeOf(error: unknown): string | undefined {
  const { code, driverError, message } = error as {
    code?: string;
    driverError?: { code?: string };
    message?: string;
  };
  return driverError?.code ?? code ?? message;
}

/** Attack: errors SQLite answers (read-only, disk full) and what they leave for the next turn. */
describe.each(sqliteEngines)('SQLite review: errors and modes ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeEach(async () => {
    t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });

  afterEach(() => t.close());

  const write = (text: string) =>
    factory.runInNewContext(async () => {
      await context.session().insert(Example, { text });
    });

  it('readOnly refuses writes, and the next turn (session and plain code) is writable again', async () => {
    const refused = await factory
      .atomic((manager) => manager.insert(Example, { text: 'refused' }), { readOnly: true })
      .then(
        () => 'written',
        (error: unknown) => codeOf(error),
      );
    expect(String(refused)).toMatch(/READONLY|readonly/i);
    await write('session');
    await t.dataSource.query("INSERT INTO example (text) VALUES ('plain')");
    expect(await t.texts()).toEqual(['plain', 'session']);
    await t.expectClean();
  });

  it('a readOnly unit whose BEGIN fails does not leave query_only on for the next turn', async () => {
    // A leaked plain BEGIN (sql.js keeps it: see leaked-transaction spec) makes the next BEGIN fail.
    const runner = t.dataSource.createQueryRunner();
    await runner.query('BEGIN');
    await runner.release();
    await factory.atomic((manager) => manager.count(Example), { readOnly: true }).catch(() => 0);
    await write('after');
    expect(await t.texts()).toEqual(['after']);
  });

  it("a user's PRAGMA query_only = ON in a session does not outlive its turn", async () => {
    await factory.runInNewContext(async () => {
      await context.session().query('PRAGMA query_only = ON');
    });
    await write('after');
    expect(await t.texts()).toEqual(['after']);
  });

  it('SQLITE_FULL in a session: the transaction counts as gone, nothing of it commits, the next turn works', async () => {
    const [{ page_count: pages }]: Array<{ page_count: number }> =
      await t.dataSource.query('PRAGMA page_count');
    await t.dataSource.query(`PRAGMA max_page_count = ${pages + 1}`);
    let full: unknown;
    let after: unknown;
    const outcome = await factory
      .runInNewContext(async () => {
        await context.session().insert(Example, { text: 'first' });
        full = await context
          .session()
          .insert(Example, { text: 'x'.repeat(200_000) })
          .then(
            () => 'inserted',
            (error: unknown) => codeOf(error),
          );
        // Caught and continued: the docs say nothing more is sent in that transaction.
        after = await context
          .session()
          .insert(Example, { text: 'after full' })
          .then(
            () => 'inserted',
            (error: Error) => error.name,
          );
      })
      .then(
        () => 'committed',
        (error: Error) => error.name,
      );
    expect(String(full)).toMatch(/FULL|full/);
    expect(after).not.toBe('inserted');
    expect(outcome).not.toBe('committed');
    await t.dataSource.query('PRAGMA max_page_count = 1073741823');
    await write('next');
    expect(await t.texts()).toEqual(['next']);
    await t.expectClean();
  });

  it('SQLITE_FULL in plain dataSource.transaction(): the next turn works', async () => {
    const [{ page_count: pages }]: Array<{ page_count: number }> =
      await t.dataSource.query('PRAGMA page_count');
    await t.dataSource.query(`PRAGMA max_page_count = ${pages + 1}`);
    await expect(
      t.dataSource.transaction(async (manager) => {
        await manager.insert(Example, { text: 'first' });
        await manager.insert(Example, { text: 'x'.repeat(200_000) });
      }),
    ).rejects.toBeDefined();
    await t.dataSource.query('PRAGMA max_page_count = 1073741823');
    await write('next');
    expect(await t.texts()).toEqual(['next']);
    await t.expectClean();
  });
});
