import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, enginesAndSqlite, slowSql } from '../support/engines.js';

describe.each(enginesAndSqlite)('concurrent queries on one session ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;
  /** The most statements the pg client itself had queued behind a running one (pg only). */
  let deepestPgQueue = 0;
  const watchPgQueue = (session: EntityManager) => {
    const client = (
      session.queryRunner as unknown as { databaseConnection?: { _queryQueue?: unknown[] } }
    ).databaseConnection;
    deepestPgQueue = Math.max(deepestPgQueue, client?._queryQueue?.length ?? 0);
  };

  beforeAll(async () => {
    t = await createTestApp(engine);
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(async () => {
    await t.close();
  });

  it('Promise.all on one session runs every query, in order, on its one connection', async () => {
    const finished: number[] = [];
    await factory.runInNewContext(async () => {
      const session = context.session();
      await session.query('SELECT 1'); // the transaction is open: the next five go straight out
      const branches = [0.03, 0.01, 0.02, 0, 0.01].map(async (seconds, index) => {
        await session.query(slowSql(engine, seconds));
        finished.push(index);
        return backendId(engine, session);
      });
      await new Promise((resolve) => setTimeout(resolve, 10)); // the first sleep is running
      watchPgQueue(session);
      const backends = await Promise.all(branches);
      expect(new Set(backends).size).toBe(1);
      await session.insert('example', { text: 'after_all' });
    });
    // One connection runs one statement at a time: they finish in the order they were sent.
    expect(finished).toEqual([0, 1, 2, 3, 4]);
    expect(await t.texts()).toEqual(['after_all']);
    // pg deprecates overlapping client.query() calls (pg@9 drops them): the session queues its
    // own, so the driver never holds a query behind another.
    expect(deepestPgQueue).toBe(0);
  });

  it('a failing query among concurrent ones rejects alone and the rest still settle', async () => {
    let statuses: string[] = [];
    const ended = await factory
      .runInNewContext(async () => {
        const session = context.session();
        const outcomes = await Promise.allSettled([
          session.query(slowSql(engine, 0.02)),
          session.query('SELECT * FROM no_such_table'),
          session.query('SELECT 1 AS one'),
        ]);
        statuses = outcomes.map((outcome) => outcome.status);
      })
      .then(
        () => 'committed',
        (error: Error) => error.name,
      );
    expect(statuses[0]).toBe('fulfilled');
    expect(statuses[1]).toBe('rejected');
    // PostgreSQL refuses the rest of an aborted transaction; MariaDB runs it: either way it settles.
    expect(statuses).toHaveLength(3);
    // PostgreSQL aborted the transaction at the failed statement: its COMMIT cannot succeed.
    expect(ended).toBe(engine.name === 'postgres' ? 'TransactionAbortedError' : 'committed');
    expect(await t.rows()).toBe(0);
  });
});
