import { SessionContext, SessionFactory } from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 500;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Attack: a statement sent on a plain query runner after it was released. TypeORM refuses it
 * (or, on sql.js, would run it on the shared connection); the turn on the one connection must not
 * be taken for it and kept: everything after would wait for a turn nobody gives back.
 */
describe.each(sqliteEngines)('SQLite review 2: a released plain runner ($name)', (engine) => {
  let t: TestApp;

  beforeEach(async () => {
    t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
  });

  afterEach(() => t.close());

  it('a query on a released runner does not keep the turn: the next plain query runs', async () => {
    const runner = t.dataSource.createQueryRunner();
    await runner.query('SELECT 1');
    await runner.release();
    await runner.query('SELECT 1').catch(() => undefined);
    await expect(t.dataSource.query('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
    await t.expectClean();
  });

  it('a statement left running after its plain transaction() ended does not block the next unit', async () => {
    let late: Promise<unknown> | undefined;
    await t.dataSource.transaction(async (manager) => {
      await manager.insert(Example, { text: 'inside' });
      late = sleep(30).then(() => manager.find(Example));
    });
    await late!.catch(() => undefined);
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    await expect(
      factory.runInNewContext(() => context.session().insert(Example, { text: 'next unit' })),
    ).resolves.toBeDefined();
    expect(await t.texts()).toEqual(['inside', 'next unit']);
    await t.expectClean();
  });
});
