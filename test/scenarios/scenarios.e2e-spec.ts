import { SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { checkedOut, enginesAndSqlite } from '../support/engines.js';
import { ScenariosController } from './scenarios.controller.js';
import { ScenariosService } from './scenarios.service.js';

/**
 * The original suite, each test in a TestTransaction (the testing kit): every request, session
 * and check of a test runs in one transaction, rolled back after it, so the next test starts from
 * an empty table without a DELETE. Checks read through the app's DataSource, which sees the
 * test's data.
 */
describe.each(enginesAndSqlite)('original suite, ported ($name)', (engine) => {
  let t: TestApp;
  let tx: TestTransaction;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [ScenariosController],
      providers: [ScenariosService],
    });
  });
  beforeEach(async () => {
    tx = await TestTransaction.start(t.app);
  });
  afterEach(async () => {
    await tx.rollback();
    expect(await t.rows()).toBe(0); // the next test starts from what the last one found
    await t.expectClean();
  });
  afterAll(() => t.close());

  it('simple usage: one insert through the context session is committed', async () => {
    await t.http().get('/simple_usage').expect(200);
    expect(await t.texts()).toEqual(['simple_usage']);
  });

  it('atomic: a joined atomic block and a later insert are committed together', async () => {
    await t.http().get('/atomic_base_example').expect(200);
    expect(await t.texts()).toEqual(['after_atomic', 'atomic']);
  });

  it('atomic with a previous transaction: commits, savepoints and an escaping error', async () => {
    const response = await t.http().get('/atomic_and_previous_transaction');
    expect(response.status).toBe(500);
    expect(await t.texts()).toEqual([
      'committed_early',
      'joined',
      'own_transaction',
      'savepoint_kept',
    ]);
  });

  it('early commit: commits mid-request, closes, then auto-commits the rest', async () => {
    await t.http().get('/early_commit').expect(200);
    expect(await t.rows()).toBe(4);
  });

  it('early rollback: both rollback paths discard the work', async () => {
    await t.http().get('/early_rollback').expect(200);
    expect(await t.rows()).toBe(0);
  });

  it('rollback by exception: a thrown error gives a 500 and no row', async () => {
    await t.http().get('/auto_rollback_by_exception').expect(500);
    expect(await t.rows()).toBe(0);
  });

  it('rollback by HTTP error: HttpException(500) and HttpException(400) leave no row', async () => {
    await t.http().get('/auto_rollback_by_status_code').expect(500);
    await t.http().get('/auto_rollback_by_client_error').expect(400);
    expect(await t.rows()).toBe(0);
  });

  it('concurrent queries: five branches commit, the failing one rolls back', async () => {
    const response = await t.http().get('/concurrent_queries').expect(200);
    expect(response.body).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
    ]);
    expect(await t.texts()).toEqual([
      'context_session',
      'factory_atomic',
      'factory_open',
      'new_context',
      'new_context_manual',
    ]);
  });

  it('direct call: runInNewContext around a service commits without HTTP', async () => {
    const service = t.app.get(ScenariosService);
    await t.app.get(SessionFactory).runInNewContext(() => service.atomicBaseExample());
    expect(await t.texts()).toEqual(['after_atomic', 'atomic']);
  });
});

/** How many connections a request holds is the pool's business: tested against a real pool. */
describe.each(enginesAndSqlite)('original suite, connection use ($name)', (engine) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [ScenariosController],
      providers: [ScenariosService],
    });
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('early connection close: no connection is held during the long work', async () => {
    let heldDuringWork = -1;
    ScenariosController.longWork = async () => {
      heldDuringWork = checkedOut(t.dataSource);
    };
    await t.http().get('/early_connection_close').expect(200);
    expect(heldDuringWork).toBe(0);
    expect(await t.texts()).toEqual(['after_close', 'before_close']);
  });
});
