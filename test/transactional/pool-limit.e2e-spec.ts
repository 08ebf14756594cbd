import { InvalidOptionError } from '../../src/index.js';
import { resolveModuleOptions } from '../../src/typeorm-context.options.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { checkedOut, engines } from '../support/engines.js';
import { Barrier } from './barrier.js';
import { type Outcome, PoolController, rendezvous } from './pool.controller.js';

const ACQUIRE_TIMEOUT = 500;

/** The clear, actionable failure of a session that found the pool exhausted. */
function expectAcquireTimeout(outcome: Outcome, poolSize: number, held: number): void {
  expect(outcome).toMatchObject({ ok: false, name: 'ConnectionAcquireTimeoutError' });
  expect(outcome.message).toContain(`data source 'default' within acquireTimeout (500 ms)`);
  expect(outcome.message).toContain(`pool (size ${poolSize}) is exhausted`);
  expect(outcome.message).toContain(`already holds ${held} connection`);
  expect(outcome.message).toMatch(/Raise the pool size.*commit or close.*raise `acquireTimeout`/s);
  // It waited for the timeout (not less), and not much longer: it does not hang.
  expect(outcome.elapsed).toBeGreaterThanOrEqual(ACQUIRE_TIMEOUT - 20);
  expect(outcome.elapsed).toBeLessThan(ACQUIRE_TIMEOUT + 2000);
}

describe('acquireTimeout option', () => {
  it('defaults to 10 s and must be a positive number of milliseconds', () => {
    expect(resolveModuleOptions().acquireTimeout).toBe(10_000);
    expect(resolveModuleOptions({ acquireTimeout: 250 }).acquireTimeout).toBe(250);
    for (const acquireTimeout of [0, -1, Number.NaN, Infinity, '500' as unknown as number]) {
      expect(() => resolveModuleOptions({ acquireTimeout })).toThrow(InvalidOptionError);
    }
    expect(() => resolveModuleOptions({ acquireTimeout: 0 })).toThrow(/acquireTimeout: 0/);
  });
});

describe.each(engines)('pool safety ($name)', (engine) => {
  afterEach(() => {
    rendezvous.holding = undefined;
    rendezvous.failed = undefined;
  });

  describe('pool of 1: a request holds the only connection', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp(engine, {
        controllers: [PoolController],
        poolSize: 1,
        context: { acquireTimeout: ACQUIRE_TIMEOUT },
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it.each([
      ['requires-new', 1],
      ['factory-atomic', 1],
      ['open', 1],
      ['run-in-new-context', 0],
    ])(
      '%s fails with ConnectionAcquireTimeoutError after acquireTimeout; the app serves on',
      async (via, held) => {
        const { body } = await t.http().get(`/pool/independent?via=${via}`).expect(200);
        expectAcquireTimeout(body as Outcome, 1, held);
        await t.expectClean();
        await t.http().get('/pool/ok').expect(200, 'ok');
        expect(await t.texts()).toEqual(['ok', 'outer']);
      },
    );

    it('a block whose own timeout ends while it waits for a connection: the late connection is released', async () => {
      const { body } = await t.http().get('/pool/independent?via=requires-new-timeout').expect(200);
      expect(body).toMatchObject({ ok: false, name: 'TransactionTimeoutError' });
      expect((body as Outcome).elapsed).toBeLessThan(ACQUIRE_TIMEOUT);
      await t.expectClean();
      await t.http().get('/pool/ok').expect(200, 'ok');
      expect(await t.texts()).toEqual(['ok', 'outer']);
    });
  });

  describe('pool of 2: two concurrent requests each hold one and want one more', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp(engine, {
        controllers: [PoolController],
        poolSize: 2,
        context: { acquireTimeout: ACQUIRE_TIMEOUT },
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('both fail clearly instead of waiting for each other forever; nothing leaks', async () => {
      rendezvous.holding = new Barrier(2);
      rendezvous.failed = new Barrier(2);
      const both = await Promise.all([
        t.http().get('/pool/independent?via=requires-new').expect(200),
        t.http().get('/pool/independent?via=requires-new').expect(200),
      ]);
      for (const { body } of both) expectAcquireTimeout(body as Outcome, 2, 1);
      // The connections the timed-out waits got later went straight back to the pool.
      await t.expectClean();
      expect(checkedOut(t.dataSource)).toBe(0);
      await t.http().get('/pool/ok').expect(200, 'ok');
      expect(await t.texts()).toEqual(['ok', 'outer', 'outer']);
    });
  });
});
