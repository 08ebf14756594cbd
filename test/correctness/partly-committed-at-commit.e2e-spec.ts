import { SessionContext, SessionFactory } from '../../src/index.js';
import { closeApp, HANG_MS, within } from './support-b.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';

/*
 * docs/transactions.md (retry), docs/errors.md: a COMMIT of an owned block that fails after
 * something of it committed (here a midway `sessionContext.commit()`) rejects with
 * PartlyCommittedError whatever the failure, its `cause` the COMMIT's own error (here a deferred
 * unique violation, 23505, which is not retryable), after one attempt.
 */
describe('an owned block that committed midway, then a non-retryable COMMIT failure (postgres)', () => {
  const engine = engines.find((candidate) => candidate.name === 'postgres')!;
  let t: TestApp;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine);
    factory = t.app.get(SessionFactory);
    await t.dataSource.query('DROP TABLE IF EXISTS partly_deferred');
    await t.dataSource.query(
      'CREATE TABLE partly_deferred (k int, CONSTRAINT partly_deferred_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)',
    );
  });
  afterAll(async () => {
    await t?.dataSource.query('DROP TABLE IF EXISTS partly_deferred');
    await closeApp(t, engine);
  });

  it('rejects with PartlyCommittedError caused by the COMMIT error; the block ran once', async () => {
    let runs = 0;
    const outcome = await within(
      HANG_MS,
      'an owned block that committed midway and whose COMMIT fails',
      factory
        .atomic(
          async (manager) => {
            runs++;
            await manager.query('INSERT INTO partly_deferred (k) VALUES (1)');
            await t.app.get(SessionContext).commit();
            await t.app
              .get(SessionContext)
              .session()
              .query('INSERT INTO partly_deferred (k) VALUES (1)');
          },
          { retry: 2 },
        )
        .then(
          () => undefined,
          (error: {
            name?: string;
            cause?: { code?: string; driverError?: { code?: string } };
          }) => ({
            name: error.name,
            cause: error.cause?.driverError?.code ?? error.cause?.code,
          }),
        ),
    );
    const rows: Array<{ n: string }> = await t.dataSource.query(
      'SELECT count(*) AS n FROM partly_deferred',
    );
    expect(runs).toBe(1);
    expect(Number(rows[0]!.n)).toBe(1);
    expect(outcome).toEqual({ name: 'PartlyCommittedError', cause: '23505' });
  });
});
