import { AsyncLocalStorage } from 'node:async_hooks';
import { tracingChannel } from 'node:diagnostics_channel';
import {
  CallbackError,
  Propagation,
  SessionContext,
  SessionFactory,
  TRANSACTION_CHANNEL,
} from '../../src/index.js';
import { checkedOut } from '../support/engines.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, engines } from '../support/engines.js';
import { record } from './recorder.js';

/**
 * Review of the tracing channels (docs/observability.md) for blocks run through the
 * SessionContext / SessionFactory API, without HTTP.
 */
describe.each(engines)('tracing channels, blocks review ($name)', (engine: Engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;
  let recorder: ReturnType<typeof record> | undefined;

  beforeAll(async () => {
    t = await createTestApp(engine, { context: { callbackErrors: 'throw' } });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });
  afterEach(() => {
    recorder?.stop();
    recorder = undefined;
  });
  afterAll(() => t.close());

  it("a REQUIRES_NEW block that committed, whose afterCommit callback failed, reports outcome 'committed'", async () => {
    recorder = record(['transaction']);
    const error = await factory
      .atomic(async (manager) => {
        await manager.query("INSERT INTO example (text) VALUES ('kept')");
        context.afterCommit(() => {
          throw new Error('mail server down');
        });
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallbackError);
    // The commit stands (CallbackError's own contract).
    expect(await t.texts()).toEqual(['kept']);
    const end = recorder.events.find((e) => e.event === 'asyncEnd')!;
    expect({ mode: end.message.mode, outcome: end.message.outcome }).toEqual({
      mode: 'begin',
      outcome: 'committed',
    });
    await t.dataSource.query('DELETE FROM example');
  });

  it("a unit's start comes before the start of a REQUIRED block that is its first use of the database", async () => {
    recorder = record(['unit', 'transaction']);
    await factory.runInNewContext(() => context.atomic((manager) => manager.query('SELECT 1')));
    const names = recorder.names();
    // The unit encloses the block: its start must come first, as it does for a NESTED block.
    expect(names.indexOf('unit:start')).toBeLessThan(names.indexOf('transaction:start'));
  });

  it('a NESTED block that is the first use: unit start comes first', async () => {
    recorder = record(['unit', 'transaction']);
    await factory.runInNewContext(() =>
      context.atomic((manager) => manager.query('SELECT 1'), {
        propagation: Propagation.NESTED,
      }),
    );
    const names = recorder.names();
    expect(names.indexOf('unit:start')).toBeLessThan(names.indexOf('transaction:start'));
  });

  it("a block that times out: reason 'timeout', asyncEnd once its connection is back", async () => {
    let heldAtEnd = -1;
    recorder = record(['transaction'], (e) => {
      if (e.event === 'asyncEnd') heldAtEnd = checkedOut(t.dataSource);
    });
    const error = await factory
      .atomic((manager) => manager.query(engine.sleepSql(2)), { timeout: 100 })
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('TransactionTimeoutError');
    const end = recorder.events.find((e) => e.event === 'asyncEnd')!;
    expect({ outcome: end.message.outcome, reason: end.message.reason }).toEqual({
      outcome: 'rolled back',
      reason: 'timeout',
    });
    expect(heldAtEnd).toBe(0);
  });

  it("a block whose connection is killed mid-transaction: reason 'connection-lost'", async () => {
    recorder = record(['transaction']);
    const error = await factory
      .atomic(async (manager) => {
        const id = await backendId(engine, manager);
        await t.dataSource.query(
          engine.name === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL ${id}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
        await manager.query('SELECT 1');
      })
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('ConnectionLostError');
    const end = recorder.events.find((e) => e.event === 'asyncEnd')!;
    expect({ outcome: end.message.outcome, reason: end.message.reason }).toEqual({
      outcome: 'rolled back',
      reason: 'connection-lost',
    });
  });

  it('retry: one start/asyncEnd per attempt, attempts 1 and 2', async () => {
    recorder = record(['transaction']);
    let calls = 0;
    await factory.atomic(
      async (manager) => {
        await manager.query('SELECT 1');
        if (++calls === 1) throw Object.assign(new Error('serialization'), { code: '40001' });
      },
      { retry: 2 },
    );
    const seen = recorder.events
      .filter((e) => e.event === 'start' || e.event === 'asyncEnd')
      .map((e) => `${e.event}:${String(e.message.attempt)}:${String(e.message.outcome)}`);
    expect(seen).toEqual([
      'start:1:undefined',
      'asyncEnd:1:rolled back',
      'start:2:undefined',
      'asyncEnd:2:committed',
    ]);
  });

  it('a MANDATORY block with no transaction, a NEVER block in one: refused before they run, they publish nothing (docs/observability.md)', async () => {
    recorder = record(['transaction']);
    const outside = await context
      .atomic(() => 1, { propagation: Propagation.MANDATORY })
      .catch((e: unknown) => e);
    expect((outside as Error).name).toBe('TransactionRequiredError');
    const inside = await factory
      .atomic(() => context.atomic(() => 1, { propagation: Propagation.NEVER }))
      .catch((e: unknown) => e);
    expect((inside as Error).name).toBe('TransactionNotAllowedError');
    // Only the REQUIRES_NEW block around the second one began anything: it alone is published.
    const settled = recorder.events
      .filter((e) => e.event === 'asyncEnd')
      .map((e) => e.message.propagation);
    expect(settled).toEqual([Propagation.REQUIRES_NEW]);
  });

  it('a store bound on transaction.start is seen inside REQUIRES_NEW, REQUIRED and NESTED blocks', async () => {
    const store = new AsyncLocalStorage<string>();
    const channel = tracingChannel(TRANSACTION_CHANNEL);
    channel.start.bindStore(store, (message) => (message as { mode: string }).mode);
    try {
      const seen: Array<string | undefined> = [];
      await factory.atomic(async (manager) => {
        seen.push(store.getStore());
        await manager.query('SELECT 1');
        await context.atomic(async (inner) => {
          seen.push(store.getStore());
          await inner.query('SELECT 1');
        });
        await context.atomic(
          async (inner) => {
            seen.push(store.getStore());
            await inner.query('SELECT 1');
          },
          { propagation: Propagation.NESTED },
        );
      });
      expect(seen).toEqual(['begin', 'join', 'savepoint']);
    } finally {
      channel.start.unbindStore(store);
    }
  });

  it('a nested runInNewContext: two units, properly nested', async () => {
    recorder = record(['unit']);
    await factory.runInNewContext(async () => {
      await context.session().query('SELECT 1');
      await factory.runInNewContext(() => context.session().query('SELECT 1'));
    });
    expect(recorder.names()).toEqual([
      'unit:start',
      'unit:start',
      'unit:asyncStart',
      'unit:asyncEnd',
      'unit:asyncStart',
      'unit:asyncEnd',
    ]);
    expect(recorder.events.map((e) => e.message.kind)).toEqual(Array(6).fill('context'));
    expect(recorder.events[1]!.raw).toBe(recorder.events[2]!.raw);
  });

  it('a subscriber added mid-unit sees no asyncEnd without a start', async () => {
    await factory.runInNewContext(async () => {
      await context.session().query('SELECT 1');
      recorder = record(['unit']);
    });
    expect(recorder!.names()).toEqual([]);
  });

  it('REQUIRES_NEW inside a failing NESTED inside a unit: every start has one asyncEnd, properly nested', async () => {
    recorder = record();
    await factory.runInNewContext(async () => {
      await context.session().query('SELECT 1');
      await context
        .atomic(
          async () => {
            await factory.atomic((manager) => manager.query('SELECT 1'));
            throw new Error('nested fails');
          },
          { propagation: Propagation.NESTED },
        )
        .catch(() => undefined);
    });
    const open: object[] = [];
    for (const e of recorder.events) {
      if (e.event === 'start') open.push(e.raw);
      if (e.event === 'asyncEnd') expect(open.pop()).toBe(e.raw);
    }
    expect(open).toEqual([]);
    const ends = recorder.events
      .filter((e) => e.event === 'asyncEnd')
      .map(
        (e) => `${e.channel}:${String(e.message.mode ?? '')}:${String(e.message.outcome ?? '')}`,
      );
    expect(ends).toEqual([
      'connection::',
      'connection::',
      'transaction:begin:committed',
      'savepoint::rolled back',
      'transaction:savepoint:rolled back to savepoint',
      'unit::committed',
    ]);
  });
});
