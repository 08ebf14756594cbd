import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, terminateServerConnections, within } from './support-b.js';

/** The error a promise rejected with, or a marker error when it resolved. */
function rejection(work: Promise<unknown>): Promise<Error> {
  return work.then(
    (value) => new Error(`resolved instead of rejecting: ${String(value)}`),
    (error: Error) => error,
  );
}

describe.each(enginesAndSqlite)(
  'closing sessions: races, advice and shutdown ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;
    const unblock = () => terminateServerConnections(engine);

    beforeAll(async () => {
      t = await createTestApp(engine);
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    it('commit() racing close(): the commit stands and its afterCommit callback runs exactly once', async () => {
      let ran = 0;
      await within(
        HANG_MS,
        'Promise.all([commit(), close()])',
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'committed' });
          context.afterCommit(() => {
            ran++;
          });
          await Promise.all([context.commit(), context.close()]);
        }),
        unblock,
      );
      expect(await t.texts()).toEqual(['committed']);
      expect(ran).toBe(1);
    });

    it("SessionClosedError's advice works: after the runner was released, sessionContext.session() gives a working session", async () => {
      let late: Error | undefined;
      let freshUse: string | undefined;
      const ended = await within(
        HANG_MS,
        'a context whose session runner was released',
        factory
          .runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'before_release' });
            await session.queryRunner!.release();
            late = await rejection(session.query('SELECT 1'));
            // The advice of the error: call sessionContext.session() again.
            freshUse = await context
              .session()
              .insert(Example, { text: 'after_release' })
              .then(
                () => 'ok',
                (error: Error) => `${error.name}: ${error.message}`,
              );
          })
          .then(
            () => 'committed',
            (error: Error) => `${error.name}: ${error.message}`,
          ),
        unblock,
      );
      expect(freshUse).toBe('ok');
      expect(ended).toBe('committed');
      expect(late?.name).toBe('SessionClosedError');
      // release() rolled the first transaction back; the fresh session committed with the context.
      expect(await t.texts()).toEqual(['after_release']);
    });

    it('SessionClosedError of a sessionFactory.open() session says to open a new session, not to call sessionContext.session()', async () => {
      const session = factory.open();
      await session.manager.insert(Example, { text: 'released' });
      await session.manager.queryRunner!.release();
      const [byQuery, byInsert] = await within(
        HANG_MS,
        'queries on a released factory session',
        Promise.all([
          rejection(session.manager.query('SELECT 1')),
          rejection(session.manager.insert(Example, { text: 'late' })),
        ]),
        unblock,
      );
      for (const late of [byInsert, byQuery]) {
        expect(`${late.name}: ${late.message}`).toMatch(/^SessionClosedError: /);
        expect(late.message).not.toMatch(/sessionContext\.session\(\)/);
        expect(late.message).toMatch(/sessionFactory\.open\(\)/);
      }
      // The same for a session closed with close().
      const closed = factory.open();
      await closed.manager.query('SELECT 1');
      await closed.close();
      const afterClose = await rejection(closed.manager.insert(Example, { text: 'late' }));
      expect(`${afterClose.name}: ${afterClose.message}`).toMatch(/^SessionClosedError: /);
      expect(afterClose.message).not.toMatch(/sessionContext\.session\(\)/);
      expect(await t.rows()).toBe(0);
    });

    it('after app.close(), session(), atomic(), runInNewContext() and open() fail with a "shut down" error, not TypeORM\'s', async () => {
      const own = await createTestApp(engine);
      const ownContext = own.app.get(SessionContext);
      const ownFactory = own.app.get(SessionFactory);
      // A context opened before the close that asks for its session after it.
      let resume!: () => void;
      const gate = new Promise<void>((resolve) => (resume = resolve));
      const inFlight = ownFactory.runInNewContext(async () => {
        await gate;
        return ownContext.session().insert(Example, { text: 'in_flight' });
      });
      await closeApp(own, engine);
      resume();

      let outside: unknown;
      try {
        ownContext.session();
      } catch (error) {
        outside = error;
      }
      const errors = await within(
        HANG_MS,
        'the calls after app.close()',
        Promise.all([
          rejection(inFlight),
          rejection(ownFactory.atomic((manager) => manager.insert(Example, { text: 'atomic' }))),
          rejection(
            ownFactory.runInNewContext(() =>
              ownContext.session().insert(Example, { text: 'new_context' }),
            ),
          ),
          rejection(
            Promise.resolve().then(() =>
              ownFactory.open().manager.insert(Example, { text: 'factory_session' }),
            ),
          ),
        ]),
      );
      const all = [outside as Error, ...errors];
      expect(all.map((error) => error?.message)).toEqual(
        all.map(() => expect.stringMatching(/shut down/)),
      );
      expect(all.map((error) => error?.message)).not.toContainEqual(
        expect.stringMatching(/Driver not Connected/i),
      );
      expect(new Set(all.map((error) => error?.name)).size).toBe(1);
      expect(await t.rows()).toBe(0);
    });
  },
);
