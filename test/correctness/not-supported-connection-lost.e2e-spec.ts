import { DataSource, type EntityManager } from 'typeorm';
import {
  ConnectionLostError,
  Propagation,
  SessionContext,
  SessionFactory,
} from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, within } from './support-b.js';

/**
 * A NOT_SUPPORTED block's statement whose connection the server terminates while it runs: it fails
 * with ConnectionLostError, as a session's statement does (found by the randomized test, which saw
 * the driver's own error escape), and the block's next statement gets another connection.
 */
describe.each(engines)(
  'a NOT_SUPPORTED block whose connection is lost ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let admin: DataSource;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine, { poolSize: 2 });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
      admin = await new DataSource({ ...engine.options, poolSize: 1, logging: false }).initialize();
    });
    afterAll(async () => {
      await admin.destroy();
      await closeApp(t, engine);
    });

    const sleeping = engine.name === 'postgres' ? 'SELECT pg_sleep(5)' : 'SELECT SLEEP(5)';

    /** Terminates the server connection running `sleeping`, once it runs. */
    async function killSleeper(): Promise<void> {
      const find =
        engine.name === 'postgres'
          ? `SELECT pid AS id FROM pg_stat_activity WHERE query = '${sleeping}' AND pid <> pg_backend_pid()`
          : `SELECT id FROM information_schema.processlist WHERE info = '${sleeping}'`;
      let ids: Array<{ id: number | string }> = [];
      await eventually(async () => (ids = await admin.query(find)).length > 0);
      const id = Number(ids[0]!.id);
      await admin.query(
        engine.name === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL ${id}`,
      );
    }

    it('the statement fails with ConnectionLostError naming NOT_SUPPORTED; the next one runs', async () => {
      const outcome = await within(
        HANG_MS,
        'a NOT_SUPPORTED block whose statement is killed',
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'outer' });
          return context.atomic(
            async (manager: EntityManager) => {
              const killed = await Promise.all([
                manager.query(sleeping).then(
                  () => 'ran',
                  (error: Error) => error,
                ),
                killSleeper(),
              ]);
              await manager.insert(Example, { text: 'after the kill' });
              return killed[0];
            },
            { propagation: Propagation.NOT_SUPPORTED },
          );
        }),
      );
      expect(outcome).toBeInstanceOf(ConnectionLostError);
      expect((outcome as Error).message).toMatch(/NOT_SUPPORTED/);
      expect((outcome as Error).cause).toBeDefined();
      expect(await t.texts()).toEqual(['after the kill', 'outer']);
      await t.expectClean();
    });
  },
);
