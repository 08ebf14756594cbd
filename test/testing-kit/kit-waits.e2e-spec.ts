import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  ConnectionAcquireTimeoutError,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, sleep, within } from '../correctness/support-a.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite, isSqliteEngine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { KitModule, KitService, seen } from './kit-app.js';

/** The app's acquireTimeout: how long anything waits for the test's one connection. */
const ACQUIRE_TIMEOUT = 500;

/**
 * What waits for the test's one connection, and how long: inside a TestTransaction every
 * transaction of the app takes its turn on one connection, so work that would run on a second
 * connection of the pool waits for the first to end. When the first waits for it in turn, the
 * wait must end after `acquireTimeout` with a clear error, never hang the test.
 */
describe.each(enginesAndSqlite)('TestTransaction: waits for the connection ($name)', (engine) => {
  let t: TestApp;
  let app: INestApplication;
  let dataSource: DataSource;
  let context: SessionContext;
  let factory: SessionFactory;
  let tx: TestTransaction | undefined;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmContextModule.forRoot({ acquireTimeout: ACQUIRE_TIMEOUT }),
        KitModule,
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: process.env.TEST_LOG ? ['error'] : false });
    await app.init();
    dataSource = app.get(DataSource);
    context = app.get(SessionContext);
    factory = app.get(SessionFactory);
    await dataSource.query('DELETE FROM example');
    t = wrap(app, engine, dataSource);
  });
  beforeEach(() => {
    seen.callbackErrors = [];
  });
  afterEach(async () => {
    if (tx) await settle(tx.rollback(), 'tx.rollback()');
    tx = undefined;
    // Outside the test transaction: nothing of it remains, nothing is held or open.
    expect(await t.rows()).toBe(0);
    await t.expectClean();
  });
  afterAll(() => within(app.close(), 'app.close()'));

  /** Rows the test sees through the app's DataSource (inside its transaction while it runs). */
  const texts = async () =>
    (
      (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{ text: string }>
    ).map((row) => row.text);

  describe("the DataSource's own query while a unit holds the test's connection", () => {
    it('in a unit: fails with ConnectionAcquireTimeoutError after acquireTimeout; the unit rolls back', async () => {
      tx = await TestTransaction.start(app);
      const result = await settle(
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'unit' });
          await dataSource.query("INSERT INTO example (text) VALUES ('plain')");
        }),
        'runInNewContext() with a plain dataSource.query() inside',
      );
      if (isSqliteEngine(engine)) {
        // SQLite: plain code inside a unit joins it (plainTypeorm 'warn', docs/sqlite.md).
        expect(result).toMatchObject({ ok: true });
        expect(await texts()).toEqual(['plain', 'unit']);
        return;
      }
      expect(result).toMatchObject({
        ok: false,
        name: ConnectionAcquireTimeoutError.name,
        message: expect.stringMatching(/TestTransaction/),
      });
      expect(await texts()).toEqual([]);
    });

    it('in a handler: the request answers 500, the test goes on', async () => {
      tx = await TestTransaction.start(app);
      const response = await within(
        t
          .http()
          .post('/kit/plain-query')
          .then((res) => res),
        'POST /kit/plain-query',
      );
      // SQLite: plain code inside a unit joins it (plainTypeorm 'warn', docs/sqlite.md).
      const joins = isSqliteEngine(engine);
      expect(response.status).toBe(joins ? 201 : 500);
      expect(await texts()).toEqual(joins ? ['plain', 'unit'] : []);
      if (joins) await t.dataSource.query("DELETE FROM example WHERE text IN ('plain', 'unit')");
      await t.http().post('/kit/insert').expect(201);
      expect(await texts()).toEqual(['injected', 'request', 'requires-new']);
    });

    it("in a REQUIRES_NEW block's afterCommit (outside any context), a forFeature() repository fails after acquireTimeout", async () => {
      tx = await TestTransaction.start(app);
      const result = await settle(
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'unit' });
          await app.get(KitService).independentWithCallback('requires-new');
        }),
        'runInNewContext() around a REQUIRES_NEW block with an afterCommit callback',
      );
      expect(result.ok).toBe(true);
      expect(seen.callbackErrors).toEqual([ConnectionAcquireTimeoutError.name]);
      expect(await texts()).toEqual(['requires-new', 'unit']);
    });
  });
  describe('work of the test still running when rollback() is called', () => {
    /** Sends `path` without awaiting it, like a test that forgot to; resolves to its status. */
    const unawaited = (path: string) =>
      t
        .http()
        .post(path)
        .then(
          (response) => response.status,
          () => 0,
        );

    it('a request that touches the database only after rollback(): it fails, nothing is committed, the next test sees nothing', async () => {
      tx = await TestTransaction.start(app);
      const late = unawaited('/kit/late');
      await sleep(50); // the handler runs and waits; nothing of it reached the database yet
      await tx.rollback();
      tx = await TestTransaction.start(app); // the next test
      expect(await within(late, 'the late request')).toBe(500);
      expect(await texts()).toEqual([]);
      await tx.rollback();
      tx = undefined;
      expect(await t.rows()).toBe(0);
    });

    it('runInNewContext(), factory sessions and a test body transaction that go on after rollback() fail with TestTransactionError', async () => {
      tx = await TestTransaction.start(app, { settleTimeout: 50 });
      const unit = factory.runInNewContext(async () => {
        await sleep(150);
        await context.session().insert(Example, { text: 'unit' });
      });
      const session = factory.open();
      const opened = (async () => {
        await sleep(150);
        await session.manager.insert(Example, { text: 'factory open' });
        await session.commit();
      })();
      const body = dataSource.transaction(async (manager) => {
        await manager.insert(Example, { text: 'body, before' });
        await sleep(150);
        await manager.insert(Example, { text: 'body, after' });
      });
      await sleep(50);
      // The body's transaction holds the connection past settleTimeout.
      await expect(tx.rollback()).rejects.toMatchObject({ name: 'TestTransactionError' });
      tx = undefined;
      for (const [what, work] of [
        ['runInNewContext()', unit],
        ['sessionFactory.open()', opened],
        ['dataSource.transaction()', body],
      ] as const) {
        expect({ what, result: await settle(work, what) }).toMatchObject({
          what,
          result: { ok: false, name: 'TestTransactionError' },
        });
      }
      await session.close();
      expect(await t.rows()).toBe(0);
    });

    it('a request still holding its savepoint after settleTimeout: its next statement fails, it never runs on the pool', async () => {
      tx = await TestTransaction.start(app, { settleTimeout: 50 });
      const slow = unawaited('/kit/slow-twice');
      await sleep(100); // the first insert ran; the handler waits, holding its savepoint
      await expect(tx.rollback()).rejects.toMatchObject({
        name: 'TestTransactionError',
        message: expect.stringMatching(/still running/),
      });
      tx = undefined;
      expect(await within(slow, 'the slow request')).toBe(500);
      expect(await t.rows()).toBe(0);
    });
  });
});
