/**
 * PgBouncer with fewer server connections than the app's pool: a unit that holds the only server
 * connection and opens a REQUIRES_NEW block waits in PgBouncer's queue, where the pool cannot see
 * it (its client connection was handed out at once). `acquireTimeout` bounds that wait too: the
 * BEGIN that got no answer fails with `ConnectionAcquireTimeoutError` instead of waiting for
 * PgBouncer's `query_wait_timeout` (120 s by default), and nothing is left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  ConnectionAcquireTimeoutError,
  Propagation,
  SessionContext,
  SessionFactory,
} from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { Example } from '../support/example.entity.js';
import { idleInTransactionOnServer, startPooled, type Pooled } from './pooled.js';

describe('through PgBouncer (transaction pooling): a BEGIN queued for a server connection', () => {
  let pooled: Pooled;
  let t: TestApp;

  beforeAll(async () => {
    pooled = await startPooled(1);
    t = await createTestApp(pooled.engine, { context: { acquireTimeout: 500 } });
  });
  afterAll(async () => {
    await t?.close();
    await pooled?.stop();
  });

  it('fails with ConnectionAcquireTimeoutError within acquireTimeout; the outer unit rolls back; nothing leaks', async () => {
    const context = t.app.get(SessionContext);
    const factory = t.app.get(SessionFactory);
    const started = Date.now();
    const attempt = factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'outer' });
      await context.atomic((manager) => manager.insert(Example, { text: 'inner' }), {
        propagation: Propagation.REQUIRES_NEW,
      });
    });
    await expect(attempt).rejects.toBeInstanceOf(ConnectionAcquireTimeoutError);
    await expect(attempt).rejects.toThrow(/BEGIN got no answer/);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await t.rows()).toBe(0);
    await t.expectClean();
    await eventually(async () => Number((await pooled.pool()).cl_waiting) === 0);
    expect(await idleInTransactionOnServer(pooled.direct)).toBe(0);
    // The one server connection serves the next unit.
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'next' }));
    expect(await t.texts()).toEqual(['next']);
  });
});
