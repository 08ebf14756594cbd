import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { outcome, settle, sleep, within } from '../correctness/support-a.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';

/** Rows of the lock table; the side connection's transaction updates most of them. */
const ROWS = 60;

/**
 * A deadlock between a unit of work inside a TestTransaction and another connection, in which
 * the test's connection is the victim. PostgreSQL fails the statement: the unit's savepoint rolls
 * back, the test's transaction goes on. MariaDB rolls back the whole transaction, the test's
 * included with every savepoint, and goes on in autocommit mode: whatever the test sent next
 * would commit for real. The test transaction must refuse it instead.
 */
describe.each(engines)('TestTransaction: a deadlock inside a unit ($name)', (engine) => {
  let t: TestApp;
  let app: INestApplication;
  let dataSource: DataSource;
  let side: DataSource;
  let tx: TestTransaction | undefined;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot()],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    dataSource = app.get(DataSource);
    t = wrap(app, engine, dataSource);
    await dataSource.query('DELETE FROM example');
    side = new DataSource({ ...engine.options, poolSize: 2, logging: false });
    await side.initialize();
    await side.query('DROP TABLE IF EXISTS kit_lock');
    await side.query('CREATE TABLE kit_lock (id INT PRIMARY KEY, n INT NOT NULL)');
    const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, 0)`).join(', ');
    await side.query(`INSERT INTO kit_lock (id, n) VALUES ${values}`);
  });
  afterEach(async () => {
    if (tx) await settle(tx.rollback(), 'tx.rollback()');
    tx = undefined;
  });
  afterAll(async () => {
    await side.query('DROP TABLE IF EXISTS kit_lock');
    await side.destroy();
    await within(app.close(), 'app.close()');
  });

  /** Rows the test sees through the app's DataSource (inside its transaction while it runs). */
  const texts = async () =>
    (
      (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{ text: string }>
    ).map((row) => row.text);

  it("the unit fails; the test's transaction goes on (PostgreSQL) or refuses everything after (MariaDB); nothing is committed for real", async () => {
    tx = await TestTransaction.start(app);
    const context = app.get(SessionContext);
    const factory = app.get(SessionFactory);
    await dataSource.query("INSERT INTO example (text) VALUES ('seeded by the test')");

    // The other connection: locks row 1 and, to be the heavier transaction, most other rows.
    const other = side.createQueryRunner();
    await other.connect();
    await other.startTransaction();
    await other.query('UPDATE kit_lock SET n = n + 1 WHERE id >= 10');
    await other.query('UPDATE kit_lock SET n = n + 1 WHERE id = 1');

    let locked!: () => void;
    const rowTwoLocked = new Promise<void>((resolve) => (locked = resolve));
    const unit = factory.runInNewContext(async () => {
      const session = context.session();
      await session.insert('example', { text: 'written by the unit' });
      await session.query('UPDATE kit_lock SET n = n + 1 WHERE id = 2');
      locked();
      await session.query('UPDATE kit_lock SET n = n + 1 WHERE id = 1'); // waits for the other
    });
    await within(rowTwoLocked, 'the unit locking row 2');
    await sleep(200); // the unit now waits for row 1
    const closing = outcome(other.query('UPDATE kit_lock SET n = n + 1 WHERE id = 2')); // deadlock

    const failed = await settle(unit, 'the deadlocked unit', 10_000);
    expect(failed.ok).toBe(false);
    expect(await within(closing, "the other connection's statement", 10_000)).toMatchObject({
      ok: true,
    });
    await other.rollbackTransaction();
    await other.release();

    if (engine.name === 'postgres') {
      // The unit's savepoint rolled back; the test's earlier data stays, and it goes on.
      expect(await texts()).toEqual(['seeded by the test']);
      await dataSource.query("INSERT INTO example (text) VALUES ('after the deadlock')");
      expect(await texts()).toEqual(['after the deadlock', 'seeded by the test']);
    } else {
      // The server rolled the test's transaction back: nothing more runs in this test.
      for (const sql of [
        'SELECT text FROM example',
        "INSERT INTO example (text) VALUES ('after the deadlock')",
      ]) {
        expect({ sql, result: await settle(dataSource.query(sql), sql) }).toMatchObject({
          sql,
          result: { ok: false, name: 'TestTransactionError' },
        });
      }
      const next = await settle(
        factory.runInNewContext(() =>
          context.session().insert('example', { text: 'a later unit' }),
        ),
        'a later unit',
      );
      expect(next).toMatchObject({ ok: false, name: 'TestTransactionError' });
    }
    await tx.rollback();
    tx = undefined;
    // Nothing of the test reached the database, and the lock table is as it was.
    expect(await t.rows()).toBe(0);
    const sum: Array<{ n: number | string }> = await side.query('SELECT SUM(n) AS n FROM kit_lock');
    expect(Number(sum[0]?.n)).toBe(0);
    await t.expectClean();
  });
});
