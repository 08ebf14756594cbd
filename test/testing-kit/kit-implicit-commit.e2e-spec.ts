import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { checkedOut, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/**
 * MySQL/MariaDB commit the open transaction implicitly at DDL and TRUNCATE (`repository.clear()`)
 * and go on in autocommit mode: inside a TestTransaction, the test's transaction is over, and what
 * the test sent next would commit for real. The statement that ended it fails with a
 * TestTransactionError saying DDL cannot run inside a test transaction, and so does everything
 * the test sends later; nothing after it is committed.
 */
describe.each(engines.filter((e) => e.name === 'mariadb'))(
  'TestTransaction: DDL inside it on MySQL/MariaDB ($name)',
  (engine) => {
    let app: INestApplication;
    let dataSource: DataSource;
    let side: DataSource;
    let context: SessionContext;
    let factory: SessionFactory;
    let tx: TestTransaction | undefined;

    /** Rows of `example` as another connection sees them (committed for real). */
    const committed = async () =>
      ((await side.query('SELECT text FROM example ORDER BY text')) as Array<{ text: string }>).map(
        (row) => row.text,
      );

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot(typeormOptions(engine)),
          TypeOrmContextModule.forRoot({ acquireTimeout: 500 }),
        ],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      dataSource = app.get(DataSource);
      context = app.get(SessionContext);
      factory = app.get(SessionFactory);
      side = new DataSource({ ...engine.options, poolSize: 1, logging: false });
      await side.initialize();
      await side.query('DELETE FROM example');
      await side.query('DROP TABLE IF EXISTS kit_ddl');
    });
    afterEach(async () => {
      if (tx) await settle(tx.rollback(), 'tx.rollback()');
      tx = undefined;
      await side.query('DELETE FROM example');
      await side.query('DROP TABLE IF EXISTS kit_ddl');
      expect(checkedOut(dataSource)).toBe(0);
    });
    afterAll(async () => {
      await side.destroy();
      await within(app.close(), 'app.close()');
    });

    /** What the test's later statements get: its body's, and a later unit's. */
    async function later() {
      const body = await settle(
        dataSource.query("INSERT INTO example (text) VALUES ('body after')"),
        "the test body's INSERT",
      );
      const unit = await settle(
        factory.runInNewContext(() => context.session().insert(Example, { text: 'unit after' })),
        'a later unit',
      );
      return { body: body.ok ? 'ok' : body.name, unit: unit.ok ? 'ok' : unit.name };
    }

    it.each([
      ['CREATE TABLE in a unit', 'unit', 'CREATE TABLE kit_ddl (id INT PRIMARY KEY)'],
      ['CREATE TABLE in the test body', 'body', 'CREATE TABLE kit_ddl (id INT PRIMARY KEY)'],
      ['TRUNCATE in the test body', 'body', 'TRUNCATE TABLE example'],
    ])(
      '%s: fails with TestTransactionError, and so does everything after it',
      async (_label, where, sql) => {
        tx = await TestTransaction.start(app);
        await dataSource.query("INSERT INTO example (text) VALUES ('before')");
        const ddl = await settle(
          where === 'unit'
            ? factory.runInNewContext(() => context.session().query(sql))
            : dataSource.query(sql),
          sql,
        );
        expect(ddl).toMatchObject({ ok: false, name: 'TestTransactionError' });
        expect(ddl.ok ? '' : ddl.message).toMatch(
          /DDL cannot run inside a test transaction on MySQL\/MariaDB/,
        );
        expect(await later()).toEqual({
          body: 'TestTransactionError',
          unit: 'TestTransactionError',
        });
        expect((await settle(tx.rollback(), 'tx.rollback()')).ok).toBe(true);
        tx = undefined;
        // Nothing after the implicit commit reached the database.
        expect((await committed()).filter((text) => text.endsWith('after'))).toEqual([]);
      },
    );

    it('repository.clear() (TRUNCATE) fails the same way', async () => {
      tx = await TestTransaction.start(app);
      const cleared = await settle(dataSource.getRepository(Example).clear(), 'clear()');
      expect(cleared).toMatchObject({ ok: false, name: 'TestTransactionError' });
      expect(await later()).toEqual({ body: 'TestTransactionError', unit: 'TestTransactionError' });
      expect((await settle(tx.rollback(), 'tx.rollback()')).ok).toBe(true);
      tx = undefined;
      expect(await committed()).toEqual([]);
    });
  },
);
