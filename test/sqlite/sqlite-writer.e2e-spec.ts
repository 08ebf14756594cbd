import { ConnectionAcquireTimeoutError, TransactionTimeoutError } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { open, SqliteController, SqliteService } from './sqlite-app.js';

/** The driver errors of a shared connection that the writer's turns must make impossible. */
const DRIVER_TRANSACTION_ERRORS =
  /within a transaction|no such savepoint|no transaction is active|SQLITE_BUSY|database is locked/i;

describe.each(sqliteEngines)('SQLite: one connection taken in turns ($name)', (engine) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [SqliteController],
      providers: [SqliteService],
      context: { acquireTimeout: 2000 },
    });
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('two requests at once: the second waits for the first to commit, then both rows are there', async () => {
    const first = t
      .http()
      .post('/write/first?gate=g1')
      .then((r) => r);
    const second = t
      .http()
      .post('/write/second')
      .then((r) => r);
    await open('g1');
    const [a, b] = await Promise.all([first, second]);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(await t.texts()).toEqual(['first', 'second']);
  });

  it('a failing request rolls back only its own row while another request commits', async () => {
    const failing = t
      .http()
      .post('/write/lost?gate=g2&fail=1')
      .then((r) => r);
    const other = t
      .http()
      .post('/write/kept')
      .then((r) => r);
    await open('g2');
    expect((await failing).status).toBe(500);
    expect((await other).status).toBe(201);
    expect(await t.texts()).toEqual(['kept']);
  });

  it('plain TypeORM code outside any unit waits for the open transaction and is not rolled back with it', async () => {
    const failing = t
      .http()
      .post('/write/rolled_back?gate=g3&fail=1')
      .then((r) => r);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Without the writer it would run inside the request's transaction and vanish with it.
    const plain = t.dataSource.manager.insert(Example, { text: 'plain' });
    const plainTransaction = t.dataSource.transaction((manager) =>
      manager.insert(Example, { text: 'plain_transaction' }),
    );
    await open('g3');
    expect((await failing).status).toBe(500);
    await plain;
    await plainTransaction;
    expect(await t.texts()).toEqual(['plain', 'plain_transaction']);
  });

  it("plain TypeORM code inside a request whose session holds the connection joins it (plainTypeorm 'warn'), never waits for itself", async () => {
    await t.http().post('/plain-inside/ok').expect(201);
    await t.http().post('/plain-inside/lost?fail=1').expect(500);
    expect(await t.texts()).toEqual(['ok', 'ok_plain']);
  });

  it('NESTED is a savepoint: its failure undoes only its own row', async () => {
    await t.http().post('/nested/outer').expect(201);
    expect(await t.texts()).toEqual(['outer']);
  });

  it('independent sessions of one request run one after another and all commit', async () => {
    await t.http().post('/parallel/p').expect(201);
    await t.http().post('/factory/f').expect(201);
    expect(await t.texts()).toEqual(['f', 'f_ctx', 'p_a', 'p_b', 'p_c']);
  });

  it('a factory session waiting for its own request transaction fails after acquireTimeout with the reason', async () => {
    const started = Date.now();
    const { body } = await t.http().post('/self-wait').expect(500);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(body).toBeDefined();
    expect(await t.rows()).toBe(0);
  });

  it('the timeout error names SQLite and the way out', async () => {
    const factory = t.app.get((await import('../../src/index.js')).SessionFactory);
    const context = t.app.get((await import('../../src/index.js')).SessionContext);
    const error = await factory
      .runInNewContext(async () => {
        await context.session().insert(Example, { text: 'holder' });
        await factory.atomic((manager) => manager.insert(Example, { text: 'waiter' }));
      })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConnectionAcquireTimeoutError);
    expect((error as Error).message).toMatch(/SQLite data source 'default'.*one connection/);
    expect((error as Error).message).toMatch(/commit or close the session first/);
    expect(await t.rows()).toBe(0);
  });

  it('timeout: the block fails with TransactionTimeoutError, its rows are rolled back, the next request gets the connection', async () => {
    const service = t.app.get(SqliteService);
    // Outside any unit: the block owns its transaction, and its timeout applies.
    const error = await service.slow('slow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionTimeoutError);
    await t.http().post('/write/next').expect(201);
    // The block's JavaScript goes on after the timeout: its late insert fails, never commits.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await t.texts()).toEqual(['next']);
  });

  it('isolationLevel: any level is accepted (SQLite is SERIALIZABLE)', async () => {
    await t.http().post('/read-committed/rc').expect(201);
    expect(await t.texts()).toEqual(['rc']);
  });

  it('readOnly: a write fails, and the connection is writable again for the next turn', async () => {
    await t.http().post('/read-only-write').expect(500);
    const { body } = await t.http().get('/read-only-count').expect(200);
    expect(body).toEqual({ n: 0 });
    await t.http().post('/write/after').expect(201);
    expect(await t.texts()).toEqual(['after']);
  });

  it('50 concurrent requests mixing writes, failures, NESTED and factory sessions: every row, no driver transaction error', async () => {
    const expected: string[] = [];
    const calls: Array<Promise<{ status: number; text: string }>> = [];
    for (let i = 0; i < 50; i++) {
      const kind = i % 5;
      const text = `r${i}`;
      const path =
        kind === 0
          ? `/write/${text}`
          : kind === 1
            ? `/write/${text}?fail=1`
            : kind === 2
              ? `/nested/${text}`
              : kind === 3
                ? `/factory/${text}`
                : `/parallel/${text}`;
      if (kind === 0 || kind === 2) expected.push(text);
      if (kind === 3) expected.push(text, `${text}_ctx`);
      if (kind === 4) expected.push(`${text}_a`, `${text}_b`, `${text}_c`);
      calls.push(
        t
          .http()
          .post(path)
          .then((r) => ({ status: r.status, text: r.text })),
      );
    }
    // Plain code outside any unit, at the same time.
    const plain = Array.from({ length: 10 }, (_, i) =>
      t.dataSource.manager.insert(Example, { text: `plain${i}` }),
    );
    for (let i = 0; i < 10; i++) expected.push(`plain${i}`);
    const results = await Promise.all(calls);
    await Promise.all(plain);
    results.forEach((result, i) => {
      expect(result.text).not.toMatch(DRIVER_TRANSACTION_ERRORS);
      expect(result.status).toBe(i % 5 === 1 ? 500 : 201);
    });
    expect(await t.texts()).toEqual(expected.sort());
  });

  it('the testing kit: everything a test does is undone by rollback()', async () => {
    const tx = await TestTransaction.start(t.app);
    try {
      await t.http().post('/write/in_test').expect(201);
      await t.http().post('/nested/in_test_nested').expect(201);
      await t.http().post('/factory/in_test_factory').expect(201);
      const seen = (await t.dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{
        text: string;
      }>;
      expect(seen.map((row) => row.text)).toEqual([
        'in_test',
        'in_test_factory',
        'in_test_factory_ctx',
        'in_test_nested',
      ]);
    } finally {
      await tx.rollback();
    }
    expect(await t.rows()).toBe(0);
  });

  it('a request waiting at a gate keeps the connection: a second gate request queues behind it (FIFO)', async () => {
    const order: string[] = [];
    const first = t
      .http()
      .post('/write/one?gate=f1')
      .then((r) => order.push('one') && r);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const second = t
      .http()
      .post('/write/two')
      .then((r) => order.push('two') && r);
    const third = t
      .http()
      .post('/write/three')
      .then((r) => order.push('three') && r);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(order).toEqual([]);
    await open('f1');
    await Promise.all([first, second, third]);
    expect(order[0]).toBe('one');
    expect(await t.texts()).toEqual(['one', 'three', 'two']);
  });
});
