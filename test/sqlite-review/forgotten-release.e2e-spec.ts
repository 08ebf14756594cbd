import { ConnectionAcquireTimeoutError, SessionContext, SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 300;

/** Settles `work` or reports that it still ran after `ms` (a hang), without leaving a timer. */
async function within<T>(work: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([work, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Attack: a user takes `dataSource.createQueryRunner()`, connects it and forgets `release()`. It
 * holds SQLite's one connection for good. Everything else must fail clearly within acquireTimeout,
 * never hang.
 */
describe.each(sqliteEngines)('SQLite review: a query runner never released ($name)', (engine) => {
  let t: TestApp;
  let leaked: ReturnType<TestApp['dataSource']['createQueryRunner']>;

  beforeEach(async () => {
    t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    leaked = t.dataSource.createQueryRunner();
    await leaked.connect();
    await leaked.query('SELECT 1');
  });

  afterEach(async () => {
    await leaked.release();
    await t.close();
  });

  it('a unit of work fails with ConnectionAcquireTimeoutError naming SQLite', async () => {
    const unit = t.app.get(SessionFactory).runInNewContext(async () => {
      await t.app.get(SessionContext).session().insert(Example, { text: 'x' });
    });
    const error = (await within(
      unit.then(
        () => undefined,
        (e: Error) => e,
      ),
      ACQUIRE * 10,
    )) as Error;
    expect(error).toBeInstanceOf(ConnectionAcquireTimeoutError);
    expect(error.message).toMatch(/SQLite/);
  });

  it('plain dataSource.query() fails with ConnectionAcquireTimeoutError', async () => {
    const plain = t.dataSource.query('SELECT 1').then(
      () => undefined,
      (e: Error) => e,
    );
    const error = (await within(plain, ACQUIRE * 10)) as Error;
    expect(error).toBeInstanceOf(ConnectionAcquireTimeoutError);
  });

  it('TestTransaction.start() fails within acquireTimeout instead of hanging forever', async () => {
    const started = TestTransaction.start(t.app).then(
      async (tx) => {
        await tx.rollback();
        return 'started';
      },
      (e: Error) => e,
    );
    const outcome = await within(started, ACQUIRE * 10);
    // The wait for the turn is unbounded (test-transaction.ts hold(): takeConnection() directly).
    expect(outcome).toBeInstanceOf(ConnectionAcquireTimeoutError);
    // Let the start that still waits finish, so that it does not outlive the app.
    await leaked.release();
    await started;
  });

  it('the turn comes back once the runner is finally released', async () => {
    await leaked.release();
    await t.dataSource.query("INSERT INTO example (text) VALUES ('after release')");
    expect(await t.texts()).toEqual(['after release']);
  });
});
