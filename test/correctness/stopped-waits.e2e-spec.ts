/**
 * Stopped waits for a full pool (from review 24): a `timeout` expiring during a wait for a full pool; 50 stopped
 * waits, then a live waiter still times out after acquireTimeout and later live units get the pool
 * in order; the `connection` channel's message of a stopped wait (error set, timedOut false).
 */
import { tracingChannel } from 'node:diagnostics_channel';
import {
  Propagation,
  type Session,
  SessionContext,
  SessionContextEndedError,
  SessionFactory,
} from '../../src/index.js';
import { CONNECTION_CHANNEL } from '../../src/diagnostics/channels.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import {
  checkedOut,
  enginesAndSqlite,
  idleInTransaction,
  waitingForPool,
} from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { outcome, within } from './support-a.js';

describe.each(enginesAndSqlite)('stopped waits for a full pool ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;
  let blocker: Session | undefined;

  async function hold(): Promise<void> {
    blocker = factory.open();
    await blocker.manager.query('SELECT 1');
    expect(checkedOut(t.dataSource)).toBe(1);
  }

  beforeEach(async () => {
    t = await createTestApp(engine, { poolSize: 1, context: { acquireTimeout: 1500 } });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  afterEach(async () => {
    await blocker?.close().catch(() => undefined);
    blocker = undefined;
    await t.close();
  });

  it('a REQUIRES_NEW block whose timeout expires while it waits fails then; the pool serves the next unit', async () => {
    await hold();
    const block = factory.atomic((manager) => manager.insert(Example, { text: 'timed' }), {
      propagation: Propagation.REQUIRES_NEW,
      timeout: 200,
    });
    // Failed while the blocker still holds the only connection (acquireTimeout is 1.5 s).
    const result = await within(outcome(block), 'block');
    expect(result).toMatchObject({ ok: false, name: 'TransactionTimeoutError' });
    expect(checkedOut(t.dataSource)).toBe(1);
    await within(blocker!.close(), 'close');
    blocker = undefined;
    await eventually(() => checkedOut(t.dataSource) === 0);
    expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
    await within(
      factory.runInNewContext(() => context.session().insert(Example, { text: 'after' })),
      'after',
    );
    expect(await t.texts()).toEqual(['after']);
  });

  it('50 stopped waits: a live waiter still times out after acquireTimeout, later ones get the pool in order', async () => {
    await hold();
    const inserts: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      const ended = factory.runInNewContext(async () => {
        const insert = context.session().insert(Example, { text: `late ${i}` });
        inserts.push(insert);
        insert.catch(() => undefined);
        await eventually(() => waitingForPool(t.dataSource) === i + 1);
        throw new Error('fails');
      });
      await expect(within(ended, 'unit')).rejects.toThrow('fails');
    }
    const results = await within(Promise.all(inserts.map(outcome)), 'inserts');
    expect(new Set(results.map((r) => (r.ok ? 'ok' : r.name)))).toEqual(
      new Set(['SessionContextEndedError']),
    );
    // a live waiter: acquireTimeout fires
    const began = Date.now();
    const live = factory.runInNewContext(() => context.session().insert(Example, { text: 'live' }));
    const liveResult = await within(outcome(live), 'live', 5000);
    expect(liveResult).toMatchObject({ ok: false, name: 'ConnectionAcquireTimeoutError' });
    expect(Date.now() - began).toBeGreaterThan(1000);
    // ordered live waiters
    const order: string[] = [];
    const lives = [0, 1, 2].map((i) =>
      factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: `live ${i}` });
        order.push(`live ${i}`);
      }),
    );
    // 50 stopped asks and the timed-out one still queue in the pool ahead of the three live ones.
    await eventually(() => waitingForPool(t.dataSource) === 51 + 3);
    await within(blocker!.close(), 'close');
    blocker = undefined;
    await within(Promise.all(lives), 'lives');
    expect(order).toEqual(['live 0', 'live 1', 'live 2']);
    await eventually(() => checkedOut(t.dataSource) === 0);
    expect(waitingForPool(t.dataSource)).toBe(0);
    expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
    expect(await t.texts()).toEqual(['live 0', 'live 1', 'live 2']);
  });

  it('the connection channel reports a stopped wait: error SessionContextEndedError, timedOut false', async () => {
    const messages: Array<Record<string, unknown>> = [];
    const channel = tracingChannel(CONNECTION_CHANNEL);
    const handlers = {
      start() {},
      end() {},
      asyncStart() {},
      asyncEnd(message: unknown) {
        messages.push({ ...(message as Record<string, unknown>) });
      },
      error() {},
    };
    channel.subscribe(handlers as never);
    try {
      await hold();
      messages.length = 0;
      let insert: Promise<unknown> | undefined;
      const ended = factory.runInNewContext(async () => {
        insert = context.session().insert(Example, { text: 'late' });
        insert.catch(() => undefined);
        await eventually(() => waitingForPool(t.dataSource) === 1);
        throw new Error('fails');
      });
      await expect(within(ended, 'unit')).rejects.toThrow('fails');
      await expect(within(insert!, 'insert')).rejects.toBeInstanceOf(SessionContextEndedError);
      await eventually(() => messages.length === 1);
      expect(messages[0]).toMatchObject({ timedOut: false });
      expect(messages[0]!.error).toBeInstanceOf(SessionContextEndedError);
    } finally {
      channel.unsubscribe(handlers as never);
    }
  });
});
