/**
 * Behind PgBouncer (transaction pooling) the wait for a server connection happens at BEGIN, and
 * docs/transactions.md ("Pool sizing") calls it a wait for a connection bounded like the pool's.
 * A session whose context ends while its BEGIN waits there stops waiting at once, as for the app's
 * own full pool: the failing unit ends, and the waiting statement fails with
 * SessionContextEndedError, without waiting for PgBouncer or acquireTimeout. (Found by review 24.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type Session, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { Example } from '../support/example.entity.js';
import { idleInTransactionOnServer, startPooled, type Pooled } from './pooled.js';
import { outcome, within } from '../correctness/support-a.js';

/** Far longer than the deadlines below: a wait that is not stopped is seen. */
const ACQUIRE_TIMEOUT = 8_000;

describe('behind PgBouncer: a context that ends while its BEGIN waits for a server connection', () => {
  let pooled: Pooled;
  let t: TestApp;
  let blocker: Session | undefined;

  beforeAll(async () => {
    pooled = await startPooled(1);
    t = await createTestApp(pooled.engine, { context: { acquireTimeout: ACQUIRE_TIMEOUT } });
  });
  afterAll(async () => {
    await blocker?.close().catch(() => undefined);
    await t?.close();
    await pooled?.stop();
  });

  it(
    'the failing unit ends, and its waiting insert fails, at once (not after acquireTimeout)',
    async () => {
      const context = t.app.get(SessionContext);
      const factory = t.app.get(SessionFactory);
      // An open transaction holds PgBouncer's only server connection.
      blocker = factory.open();
      await blocker.manager.query('SELECT 1');
      let insert: Promise<unknown> | undefined;
      const ended = factory.runInNewContext(async () => {
        insert = context.session().insert(Example, { text: 'late' });
        insert.catch(() => undefined);
        // Its BEGIN waits in PgBouncer's queue (the app's pool handed out a client at once).
        await eventually(async () => Number((await pooled.pool()).cl_waiting) === 1);
        throw new Error('the unit fails');
      });
      const began = Date.now();
      const unit = await outcome(ended);
      const unitTook = Date.now() - began;
      const result = await within(outcome(insert!), 'the waiting insert', ACQUIRE_TIMEOUT + 5000);
      const insertTook = Date.now() - began;
      // As for the app's own full pool: the end does not wait for a connection to come, and the
      // waiting statement fails with SessionContextEndedError then.
      expect({
        unit: unit.ok ? 'ok' : unit.message,
        unitEndedWithin3s: unitTook < 3000,
        insert: result.ok ? 'ok' : result.name,
        insertFailedWithin3s: insertTook < 3000,
      }).toEqual({
        unit: 'the unit fails',
        unitEndedWithin3s: true,
        insert: 'SessionContextEndedError',
        insertFailedWithin3s: true,
      });
      await within(blocker.close(), 'closing the blocker');
      blocker = undefined;
      await t.expectClean();
      expect(await idleInTransactionOnServer(pooled.direct)).toBe(0);
      expect(await t.rows()).toBe(0);
    },
    ACQUIRE_TIMEOUT + 15_000,
  );
});
