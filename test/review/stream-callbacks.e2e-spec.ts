import type { Readable } from 'node:stream';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { within } from '../correctness/support-a.js';
import { closeApp, insertRows } from '../correctness/support-b.js';

/**
 * Review of "stream events run in the context of the code that opened the stream" (ff61754).
 *
 * `queryRunner.stream(sql, parameters, onEnd, onError)` is TypeORM's API: `onEnd` / `onError` are
 * the stream's end and error handlers. On PostgreSQL TypeORM attaches them to the stream itself
 * (so the fix binds them); on MariaDB/MySQL TypeORM attaches them to the mysql2 *Query* object,
 * whose events the driver emits from the socket of the pooled connection, i.e. in the async
 * context of whoever created that connection. The fix binds only the stream's `emit`, so on
 * MariaDB these two callbacks still run in another unit's context: a `sessionContext.session()`
 * there is the other unit's session (a write there joins the other request's transaction).
 * Expected: they run in the context of the code that opened the stream, like every other stream
 * event (DESIGN.md: every callback handed to user code runs in the context it belongs to).
 * On PostgreSQL these cases hold (so only MariaDB is listed here).
 */
const mariadb = engines.filter((engine) => engine.name === 'mariadb');

/** A promise with its resolve function, for handing a step from one unit to another. */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

/** Idle connections of the data source's pool right now. */
function idle(dataSource: DataSource): number {
  const driver = dataSource.driver as unknown as {
    master?: { idleCount: number };
    pool?: { _freeConnections: { length: number } };
  };
  return driver.master?.idleCount ?? driver.pool!._freeConnections.length;
}

/** Takes every idle connection, so that the next session to connect makes a new one. */
async function takeIdle(dataSource: DataSource): Promise<QueryRunner[]> {
  const runners: QueryRunner[] = [];
  while (idle(dataSource) > 0) {
    const runner = dataSource.createQueryRunner('master');
    await runner.connect();
    runners.push(runner);
  }
  return runners;
}

describe.each(mariadb)(
  'review: queryRunner.stream() onEnd/onError run in the opener’s context ($name)',
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
    ): Promise<{ aPid: string; bPid: string; value: T; aSession: EntityManager }> {
      const holders = await takeIdle(t.dataSource);
      const aConnected = signal<{ pid: string; session: EntityManager }>();
      const bDone = signal();
      const a = factory.runInNewContext(async () => {
        const session = context.session();
        const pid = await backendId(engine, session);
        for (const runner of holders) await runner.release();
        await context.commit();
        aConnected.resolve({ pid, session });
        await bDone.promise;
      });
      const { pid: aPid, session: aSession } = await within(aConnected.promise, 'unit A');
      try {
        const { bPid, value } = await within(
          factory.runInNewContext(async () => {
            const session = context.session();
            const bPid = await backendId(engine, session);
            return { bPid, value: await inB(session) };
          }),
          'unit B',
        );
        return { aPid, bPid, value, aSession };
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

    it("onEnd passed to queryRunner.stream() sees the opener's session, not that of the unit that made the connection", async () => {
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

    it("onError passed to queryRunner.stream() sees the opener's session, not that of the unit that made the connection", async () => {
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
        return within(failed.promise, 'onError');
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
      // B rolled back: a row written by B's onEnd must not survive (A committed it instead).
      expect(await t.dataSource.getRepository(Example).countBy({ text: 'from onEnd' })).toBe(0);
    });
  },
);
