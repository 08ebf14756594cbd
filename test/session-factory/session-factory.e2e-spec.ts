import {
  NoSessionContextError,
  SessionClosedError,
  SessionContext,
  SessionFactory,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, checkedOut, engines, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { engineRef, ParallelController } from './parallel.controller.js';

describe.each(enginesAndSqlite)('SessionFactory ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    engineRef.engine = engine;
    t = await createTestApp(engine, { controllers: [ParallelController] });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('open(): lazy, the caller commits, close() rolls back the rest and releases', async () => {
    const session = factory.open();
    expect(checkedOut(t.dataSource)).toBe(0);
    await session.manager.insert(Example, { text: 'committed' });
    expect(checkedOut(t.dataSource)).toBe(1);
    await session.commit();
    await session.manager.insert(Example, { text: 'never_committed' });
    await session.close();
    expect(checkedOut(t.dataSource)).toBe(0);
    expect(await t.texts()).toEqual(['committed']);
  });

  it('open() with await using: leaving the block rolls back and releases', async () => {
    {
      await using session = factory.open();
      await session.manager.insert(Example, { text: 'rolled_back' });
      expect(checkedOut(t.dataSource)).toBe(1);
    }
    expect(checkedOut(t.dataSource)).toBe(0);
    expect(await t.rows()).toBe(0);
  });

  it('a closed Session fails clearly instead of reviving', async () => {
    const session = factory.open();
    await session.close();
    await expect(session.manager.insert(Example, { text: 'x' })).rejects.toBeInstanceOf(
      SessionClosedError,
    );
    await expect(session.commit()).rejects.toThrow('was closed');
    expect(await t.rows()).toBe(0);
  });

  it('atomic(): commits when fn resolves, rolls back when it rejects', async () => {
    await factory.atomic((m) => m.insert(Example, { text: 'kept' }));
    await expect(
      factory.atomic(async (m) => {
        await m.insert(Example, { text: 'discarded' });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await t.texts()).toEqual(['kept']);
  });

  it('runInNewContext(): its own sessions, committed on resolve, rolled back on reject', async () => {
    const value = await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'job' });
      return 42;
    });
    expect(value).toBe(42);
    await expect(
      factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'failed_job' });
        throw new Error('job failed');
      }),
    ).rejects.toThrow('job failed');
    expect(await t.texts()).toEqual(['job']);
  });

  it('session() outside any context throws at once, saying how to get one', () => {
    expect(() => context.session()).toThrow(NoSessionContextError);
    expect(() => context.session()).toThrow(/runInNewContext|@Transactional/);
  });
});

/**
 * Sessions side by side, each on its own connection: SQLite has one connection, so there an
 * independent session waits for the caller's transaction (test/sqlite covers that).
 */
describe.each(engines)(
  'SessionFactory: independent sessions on their own connections ($name)',
  (engine) => {
    let t: TestApp;
    let factory: SessionFactory;
    let context: SessionContext;

    beforeAll(async () => {
      engineRef.engine = engine;
      t = await createTestApp(engine, { controllers: [ParallelController] });
      factory = t.app.get(SessionFactory);
      context = t.app.get(SessionContext);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('handler_multiple_sessions: five branches run in parallel on five connections and commit', async () => {
      const { body } = await t.http().get('/multiple-sessions').expect(200);
      const branches = body as Array<{ backend: string; together: number }>;
      expect(new Set(branches.map((b) => b.backend)).size).toBe(5);
      // Each branch passed a barrier that opens only once all five hold their connection at once.
      expect(branches.map((b) => b.together)).toEqual([5, 5, 5, 5, 5]);
      expect(await t.texts()).toEqual([
        'context_session',
        'new_context',
        'new_context_manual',
        'non_ctx_atomic',
        'non_ctx_manual',
      ]);
    });

    it('atomic() inside a context is independent of the context session', async () => {
      await expect(
        factory.runInNewContext(async () => {
          const outer = await backendId(engine, context.session());
          await context.session().insert(Example, { text: 'outer_rolled_back' });
          const inner = await factory.atomic(async (m) => {
            await m.insert(Example, { text: 'inner_committed' });
            return backendId(engine, context.session());
          });
          expect(inner).not.toBe(outer);
          throw new Error('outer fails');
        }),
      ).rejects.toThrow('outer fails');
      expect(await t.texts()).toEqual(['inner_committed']);
    });
  },
);
