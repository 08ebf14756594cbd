import type { Readable } from 'node:stream';
import type { EntityManager, EntitySubscriberInterface, InsertEvent } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { signal, takeIdle } from './cross-context-support.js';
import { within } from './support-a.js';
import { closeApp, insertRows } from './support-b.js';

/**
 * Callbacks user code hands to the session, run while it works on a pooled connection that another
 * unit made: `onEnd` / `onError` of `queryRunner.stream()` (TypeORM's MySQL runner attaches them to
 * the driver's query object, whose events carry the async context of whoever made the connection),
 * a `manager.transaction()` callback and an entity subscriber. In each, `sessionContext.session()`
 * must be the session of the code that handed the callback over, never the other unit's.
 */
describe.each(engines)(
  'callbacks on a connection another unit made run in their own unit ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine);
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM example');
      await insertRows(t.dataSource, 5);
    });
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    /**
     * Unit A makes a new pooled connection, commits (the connection goes back) and stays open;
     * unit B then gets that connection and runs `inB` on its own session. Returns A's pid, B's
     * pid and what `inB` returned.
     */
    async function onConnectionMadeByA<T>(
      inB: (session: EntityManager) => Promise<T>,
    ): Promise<{ aPid: string; bPid: string; value: T }> {
      const holders = await takeIdle(t.dataSource);
      const aConnected = signal<string>();
      const bDone = signal();
      const a = factory.runInNewContext(async () => {
        const pid = await backendId(engine, context.session());
        for (const runner of holders) await runner.release();
        await context.commit();
        aConnected.resolve(pid);
        await bDone.promise;
      });
      const aPid = await within(aConnected.promise, 'unit A');
      try {
        const { bPid, value } = await within(
          factory.runInNewContext(async () => {
            const session = context.session();
            const bPid = await backendId(engine, session);
            return { bPid, value: await inB(session) };
          }),
          'unit B',
        );
        return { aPid, bPid, value };
      } finally {
        bDone.resolve();
        await within(a, 'unit A ending');
      }
    }

    /** Which session `sessionContext.session()` is here: 'own', 'other' or the error's name. */
    function whose(own: EntityManager): string {
      try {
        return context.session() === own ? 'own' : 'other';
      } catch (error) {
        return (error as Error).name;
      }
    }

    /** Rows with `text`, counted outside any unit. */
    const committed = (text: string) => t.dataSource.getRepository(Example).countBy({ text });

    it("onEnd passed to queryRunner.stream() sees the opener's session", async () => {
      const { aPid, bPid, value } = await onConnectionMadeByA(async (session) => {
        const ended = signal<string>();
        const rows = (await session.queryRunner!.stream(
          'SELECT id FROM example ORDER BY id',
          [],
          () => ended.resolve(whose(session)),
        )) as Readable;
        rows.resume();
        return within(ended.promise, 'onEnd');
      });
      expect(bPid).toBe(aPid); // precondition: B streams on the connection A made
      expect(value).toBe('own');
    });

    it("onError passed to queryRunner.stream() sees the opener's session", async () => {
      const { aPid, bPid, value } = await onConnectionMadeByA(async (session) => {
        const failed = signal<string>();
        const rows = (await session.queryRunner!.stream(
          'SELECT no_such_column FROM example',
          [],
          undefined,
          () => failed.resolve(whose(session)),
        )) as Readable;
        rows.on('error', () => undefined);
        rows.resume();
        const seen = await within(failed.promise, 'onError');
        await context.rollback(); // PostgreSQL aborted the transaction
        return seen;
      });
      expect(bPid).toBe(aPid);
      expect(value).toBe('own');
    });

    it('a write in onEnd joins the unit that opened the stream: rolled back with it, never committed by the other unit', async () => {
      const { aPid, bPid } = await onConnectionMadeByA(async (session) => {
        const ended = signal<{ write: Promise<unknown> }>();
        const rows = (await session.queryRunner!.stream(
          'SELECT id FROM example ORDER BY id',
          [],
          () => {
            let write: Promise<unknown>;
            try {
              write = context.session().insert(Example, { text: 'from onEnd' });
            } catch (error) {
              write = Promise.reject(error as Error);
            }
            write.catch(() => undefined);
            ended.resolve({ write });
          },
        )) as Readable;
        rows.resume();
        const { write } = await within(ended.promise, 'onEnd');
        await write.catch(() => undefined);
        await context.rollback(); // unit B rolls back everything it wrote
      });
      expect(bPid).toBe(aPid);
      expect(await committed('from onEnd')).toBe(0);
    });

    it("a manager.transaction() callback sees the caller's session; its writes roll back with the caller", async () => {
      const { aPid, bPid, value } = await onConnectionMadeByA(async (session) => {
        const seen = await session.transaction(async () => {
          await context.session().insert(Example, { text: 'from transaction' });
          return whose(session);
        });
        await context.rollback();
        return seen;
      });
      expect(bPid).toBe(aPid);
      expect(value).toBe('own');
      expect(await committed('from transaction')).toBe(0);
    });

    it('an entity subscriber sees the session of the code that saved; its writes roll back with it', async () => {
      const seen: string[] = [];
      let owner: EntityManager | undefined;
      const subscriber: EntitySubscriberInterface<Example> = {
        listenTo: () => Example,
        afterInsert: async (event: InsertEvent<Example>) => {
          if (owner === undefined || event.entity.text !== 'saved') return;
          seen.push(whose(owner));
          await context.session().insert(Example, { text: 'from subscriber' });
        },
      };
      t.dataSource.subscribers.push(subscriber);
      try {
        const { aPid, bPid } = await onConnectionMadeByA(async (session) => {
          owner = session;
          await session.save(Example, { text: 'saved' });
          await context.rollback();
        });
        expect(bPid).toBe(aPid);
        expect(seen).toEqual(['own']);
        expect(await committed('from subscriber')).toBe(0);
      } finally {
        t.dataSource.subscribers.splice(t.dataSource.subscribers.indexOf(subscriber), 1);
      }
    });
  },
);
