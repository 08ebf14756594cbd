import { Injectable } from '@nestjs/common';
import {
  ConnectionAcquireTimeoutError,
  SessionContext,
  SessionFactory,
  Transactional,
  TransactionTimeoutError,
} from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 400;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class SlowService {
  constructor(private readonly context: SessionContext) {}

  /** Writes, then keeps its transaction (and SQLite's turn) open for `ms`. */
  @Transactional({ timeout: 150 })
  async writeThenStall(text: string, ms: number) {
    await this.context.session().insert(Example, { text });
    await sleep(ms);
    await this.context.session().insert(Example, { text: `${text} after stall` });
  }
}

/**
 * Attack: turns given on after a wait gave up (acquireTimeout) and after a `timeout` fired; the
 * order of the waiters that are left.
 */
describe.each(sqliteEngines)('SQLite review: turns after timeouts ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeEach(async () => {
    t = await createTestApp(engine, {
      context: { acquireTimeout: ACQUIRE },
      providers: [SlowService],
    });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });

  afterEach(() => t.close());

  /** A unit that writes `text`, then holds its turn for `ms` before committing. */
  const unit = (text: string, ms = 0) =>
    factory.runInNewContext(async () => {
      await context.session().insert(Example, { text });
      if (ms > 0) await sleep(ms);
    });

  it('a waiter that gave up hands its late turn on; the waiters behind it are served in order', async () => {
    const order: string[] = [];
    const holder = unit('holder', ACQUIRE + 200);
    await sleep(20);
    const gaveUp = unit('gave up').catch((error: Error) => error);
    await sleep(ACQUIRE - 100);
    // Queued behind the one that will give up: served after the holder, within their own wait.
    const second = unit('second').then(() => order.push('second'));
    await sleep(10);
    const third = unit('third').then(() => order.push('third'));
    await holder;
    expect(await gaveUp).toBeInstanceOf(ConnectionAcquireTimeoutError);
    await Promise.all([second, third]);
    expect(order).toEqual(['second', 'third']);
    expect(await t.texts()).toEqual(['holder', 'second', 'third']);
    await t.expectClean();
  });

  it('@Transactional({ timeout }) gives the turn back when it fires, not when the block returns', async () => {
    const stalled = t.app
      .get(SlowService)
      .writeThenStall('stalled', ACQUIRE * 4)
      .catch((error: Error) => error);
    await sleep(20);
    // Waits behind the stalled block: its timeout (150 ms) is well within this wait (400 ms).
    const next = unit('next').then(
      () => 'committed',
      (error: Error) => error.name,
    );
    expect(await next).toBe('committed');
    expect(await stalled).toBeInstanceOf(TransactionTimeoutError);
    expect(await t.texts()).toEqual(['next']);
    await t.expectClean();
  });

  it('a timed-out block that later sends a statement does not run it in the next turn', async () => {
    const stalled = t.app
      .get(SlowService)
      .writeThenStall('stalled', 300)
      .catch((error: Error) => error);
    await sleep(200); // the timeout fired; the turn was given on
    // Another unit holds the turn while the stalled block wakes up and tries to write.
    const holder = unit('holder', 300);
    expect(await stalled).toBeInstanceOf(TransactionTimeoutError);
    await holder;
    expect(await t.texts()).toEqual(['holder']);
    await t.expectClean();
  });
});
