import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { signal, takeIdle } from './cross-context-support.js';
import { within } from './support-a.js';
import { closeApp, insertRows } from './support-b.js';

const ROWS = 20;

describe.each(engines)('callbacks run in the context they belong to ($name)', (engine: Engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;
  /** The factory session whose hooks the current test watches. */
  let watched: EntityManager | undefined;
  /** What the hooks of `watched` saw: its own connection, and the one `session()` resolved to. */
  let seen: Array<{ hook: string; own: string; viaContext: string }> = [];

  /** Records, for the watched session, where `sessionContext.session()` points inside a hook. */
  async function record(hook: string, session: EntityManager): Promise<void> {
    if (session !== watched) return;
    const own = await backendId(engine, session);
    const viaContext = await backendId(engine, context.session());
    seen.push({ hook, own, viaContext });
  }

  beforeAll(async () => {
    t = await createTestApp(engine, {
      context: {
        onSessionStart: (session) => record('onSessionStart', session),
        beforeCommit: (session) => record('beforeCommit', session),
      },
    });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(async () => {
    watched = undefined;
    seen = [];
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  describe('stream events', () => {
    beforeEach(() => insertRows(t.dataSource, ROWS));

    it.each([
      [
        'queryRunner.stream()',
        (manager: EntityManager) =>
          manager.queryRunner!.stream('SELECT id FROM example ORDER BY id') as Promise<Readable>,
      ],
      [
        'a query-builder stream',
        (manager: EntityManager) =>
          manager.createQueryBuilder(Example, 'e').select('e.id').orderBy('e.id').stream(),
      ],
    ])(
      "%s: rows written in a 'data' listener join the unit that opened the stream, never the unit whose connection it got",
      async (_kind, open) => {
        const holders = await takeIdle(t.dataSource);
        const aConnected = signal<string>();
        const bDone = signal();
        // Unit A makes a new connection, commits (the connection goes back) and stays open.
        const a = factory.runInNewContext(async () => {
          const pid = await backendId(engine, context.session());
          for (const runner of holders) await runner.release();
          await context.commit();
          aConnected.resolve(pid);
          await bDone.promise;
        });
        const aPid = await within(aConnected.promise, 'unit A connecting');
        const listenerErrors: unknown[] = [];
        let result: { pid: string; outcomes: PromiseSettledResult<unknown>[]; seenByB: number };
        // Unit B gets A's connection, streams, writes a row per streamed row, then fails.
        const b = factory.runInNewContext(async () => {
          const pid = await backendId(engine, context.session());
          const rows = await open(context.session());
          const writes: Array<Promise<unknown>> = [];
          rows.on('data', () => {
            try {
              writes.push(context.session().insert(Example, { text: 'from B' }));
            } catch (error) {
              listenerErrors.push(error);
            }
          });
          await finished(rows);
          const outcomes = await Promise.allSettled(writes);
          const seenByB = await context.session().countBy(Example, { text: 'from B' });
          result = { pid, outcomes, seenByB };
          throw new Error('unit B fails after its writes');
        });
        await expect(within(b, 'unit B')).rejects.toThrow('unit B fails');
        bDone.resolve();
        await within(a, 'unit A');

        result = result!;
        expect(result.pid).toBe(aPid); // the precondition: B got the connection A made
        expect(listenerErrors).toEqual([]);
        expect(result.outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
        expect(result.outcomes).toHaveLength(ROWS);
        // The writes ran in B's transaction (B saw them) ...
        expect(result.seenByB).toBe(ROWS);
        // ... and B's failure rolled them back: A committed none of them.
        expect(await t.dataSource.getRepository(Example).countBy({ text: 'from B' })).toBe(0);
      },
      20_000,
    );
  });

  describe('hooks of a sessionFactory.open() session', () => {
    /** Opens a factory session, writes, commits and closes it; returns what its hooks saw. */
    async function useFactorySession() {
      const session = factory.open();
      watched = session.manager;
      try {
        const own = await backendId(engine, session.manager);
        await session.manager.insert(Example, { text: 'factory' });
        await session.commit();
        return own;
      } finally {
        await session.close();
      }
    }

    it('outside any context: in onSessionStart and beforeCommit, session() is the factory session', async () => {
      const own = await within(useFactorySession(), 'the factory session');
      expect(seen).toEqual([
        { hook: 'onSessionStart', own, viaContext: own },
        { hook: 'beforeCommit', own, viaContext: own },
      ]);
      expect(await t.dataSource.getRepository(Example).countBy({ text: 'factory' })).toBe(1);
    });

    it("inside a context whose session has a transaction open: session() is the factory session, never the caller's", async () => {
      const { caller, own } = await within(
        factory.runInNewContext(async () => {
          const caller = await backendId(engine, context.session());
          return { caller, own: await useFactorySession() };
        }),
        'the context',
      );
      expect(own).not.toBe(caller);
      expect(seen).toEqual([
        { hook: 'onSessionStart', own, viaContext: own },
        { hook: 'beforeCommit', own, viaContext: own },
      ]);
    });
  });
});
