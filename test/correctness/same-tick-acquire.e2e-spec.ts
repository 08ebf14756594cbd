import { ConnectionAcquireTimeoutError, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle, within } from './support-a.js';

/** How long a session waits for the pool before it gives up (the module's acquireTimeout). */
const ACQUIRE_TIMEOUT = 500;

/**
 * Two sessions that ask the pool for a connection in the same tick, while its one connection is
 * idle: one gets it, the other must wait at most `acquireTimeout`. pg-pool counts its idle client
 * as idle until its next tick, so a check of `idleCount` alone took the second ask for one that
 * would be served at once, and it waited without a bound: here, for a connection that the first
 * session holds until the `Promise.all` ends, which is forever.
 */
describe.each(enginesAndSqlite)('connections asked for in the same tick ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeEach(async () => {
    t = await createTestApp(engine, { poolSize: 1, context: { acquireTimeout: ACQUIRE_TIMEOUT } });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
    await t.dataSource.query('SELECT 1'); // the pool's one connection is now idle
  });
  // Bounded: a session that waits forever for the pool would keep app.close() waiting too.
  afterEach(() => within(t.close(), 'app.close()').catch(() => undefined));

  it('the one that finds no connection fails with ConnectionAcquireTimeoutError, nothing is written', async () => {
    const result = await settle(
      factory.runInNewContext(async () => {
        await Promise.all([
          context.session().insert(Example, { text: 'context' }),
          factory.atomic((manager) => manager.insert(Example, { text: 'independent' })),
        ]);
      }),
      'runInNewContext() with two sessions asking for the one connection in the same tick',
    );
    expect(result).toMatchObject({ ok: false, name: ConnectionAcquireTimeoutError.name });
    await t.expectClean(); // the connection that arrived late went back to the pool
    expect(await t.rows()).toBe(0);
  });

  it('two independent sessions: the second waits for the first, both commit', async () => {
    const result = await settle(
      Promise.all([
        factory.atomic((manager) => manager.insert(Example, { text: 'a' })),
        factory.atomic((manager) => manager.insert(Example, { text: 'b' })),
      ]),
      'two factory.atomic() asking for the one connection in the same tick',
    );
    expect(result.ok).toBe(true);
    expect(await t.texts()).toEqual(['a', 'b']);
  });
});
