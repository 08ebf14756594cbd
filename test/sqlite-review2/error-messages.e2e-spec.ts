import { ConnectionAcquireTimeoutError } from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';

const ACQUIRE = 400;

/** Attack: what the SQLite timeouts tell now that plainTypeorm 'warn' joins the unit there. */
describe.each(sqliteEngines)('SQLite review 2: error messages ($name)', (engine) => {
  let t: TestApp;

  beforeEach(async () => {
    t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
  });

  afterEach(() => t.close());

  it("the plain-code timeout does not name plainTypeorm 'warn' as a cause (on SQLite 'warn' joins the unit)", async () => {
    const runner = t.dataSource.createQueryRunner();
    await runner.startTransaction();
    try {
      const error = await t.dataSource.query('SELECT 1').catch((failure: Error) => failure);
      expect(error).toBeInstanceOf(ConnectionAcquireTimeoutError);
      expect((error as Error).message).not.toMatch(/plainTypeorm 'warn' or 'off'/);
      // It names the runner that holds the connection as a possible cause.
      expect((error as Error).message).toMatch(/createQueryRunner|query runner/);
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
    await t.expectClean();
  });
});
