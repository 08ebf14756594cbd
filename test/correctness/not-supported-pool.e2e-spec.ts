import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, within } from './support-b.js';

const ACQUIRE_MS = 300;

describe.each(engines)('NOT_SUPPORTED and the pool ($name)', (engine: Engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine, { poolSize: 1, context: { acquireTimeout: ACQUIRE_MS } });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  const notSupported = <T>(fn: (manager: EntityManager) => Promise<T>) =>
    context.atomic(fn, { propagation: Propagation.NOT_SUPPORTED });

  it("a NOT_SUPPORTED block's statement waits at most acquireTimeout when the suspended transaction holds the pool's only connection", async () => {
    const outcome = await within(
      HANG_MS,
      'a NOT_SUPPORTED statement with the only connection held by the suspended transaction',
      factory
        .runInNewContext(async () => {
          await context.session().insert(Example, { text: 'outer' });
          return notSupported((manager) => manager.insert(Example, { text: 'inner' })).then(
            () => 'resolved',
            (error: Error) => error,
          );
        })
        .catch((error: Error) => `the context failed: ${error.name}`),
    );
    expect(outcome).toMatchObject({ name: 'ConnectionAcquireTimeoutError' });
    expect((outcome as Error).message).toMatch(/NOT_SUPPORTED/);
    expect(await t.texts()).toEqual(['outer']);
  });

  it("with the connection free (the context's transaction not begun), a NOT_SUPPORTED block of a pool of 1 runs statements, a stream and a transaction of its own, and gives the connection back", async () => {
    const rows = await within(
      HANG_MS,
      'a NOT_SUPPORTED block on a pool of 1 with the connection free',
      factory.runInNewContext(() =>
        notSupported(async (manager) => {
          await manager.insert(Example, { text: 'plain' });
          await manager.transaction((inner) => inner.insert(Example, { text: 'own' }));
          const stream = await manager.createQueryBuilder(Example, 'e').stream();
          let read = 0;
          for await (const _row of stream) read++;
          return read + (await manager.getRepository(Example).count());
        }),
      ),
    );
    expect(rows).toBe(4);
    expect(await t.texts()).toEqual(['own', 'plain']);
  });
});
