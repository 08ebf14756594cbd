import { Controller, Post } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { type Session, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { checkedOut, idleInTransaction, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle, sleep, within } from './support-a.js';

/** How long a session waits for the pool before it gives up (the module's acquireTimeout). */
const ACQUIRE_TIMEOUT = 300;

/** The HTTP scenario's waiting insert, so that the test can wait for its fate. */
const late: { insert?: Promise<unknown> } = {};

@Controller('pool-wait')
class PoolWaitController {
  constructor(private readonly context: SessionContext) {}

  /** Starts an insert that waits for the pool, next to a branch that fails at once. */
  @Post('fail-while-waiting')
  async failWhileWaiting() {
    const insert = this.context.session().insert(Example, { text: 'late_http' });
    late.insert = insert.catch(() => undefined);
    await Promise.all([insert, Promise.reject(new Error('the other branch failed'))]);
    return 'unreachable';
  }
}

/** TypeORM's PostgreSQL runner internals the rescue below reads. */
interface PgRunner {
  isReleased: boolean;
  releaseCallback?: (err?: unknown) => void;
}

/**
 * Test cleanup only, never part of an assertion: gives back a pg connection whose runner TypeORM
 * believes released (`isReleased`) although it still holds it. Such a runner makes TypeORM's
 * `closePool()` (`while (connectedQueryRunners.length) await connectedQueryRunners[0].release()`)
 * spin on resolved promises forever: the event loop never turns again, so no timer can fail the
 * test and Jest hangs at 100% CPU. That is how the failure was observed against the code these
 * tests were written for: without this rescue, the PostgreSQL run sat at ~97% CPU for over ten
 * minutes, ignored the SIGTERM of `timeout 60` and had to be killed with SIGKILL. (There the
 * ended context's close released the runner while its connect was still pending, after the
 * acquire wait had timed out; pg's runner then took the connection and ignored every later
 * release().) The tests therefore assert on the leak BEFORE closing, and this cleanup gives the
 * connection back so that a failing suite still ends.
 */
function rescueLeakedConnections(dataSource: DataSource): number {
  const driver = dataSource.driver as unknown as { connectedQueryRunners?: PgRunner[] };
  const runners = driver.connectedQueryRunners ?? [];
  const leaked = runners.filter((runner) => runner.isReleased);
  for (const runner of leaked) {
    runner.releaseCallback?.();
    runner.releaseCallback = undefined;
    runners.splice(runners.indexOf(runner), 1);
  }
  return leaked.length;
}

describe.each(enginesAndSqlite)(
  'a context that ends while its session waits for the pool ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;
    let closed = false;

    /** Holds the pool's only connection with an independent session that has queried. */
    async function holdTheOnlyConnection(): Promise<Session> {
      const blocker = factory.open();
      await blocker.manager.query('SELECT 1');
      expect(checkedOut(t.dataSource)).toBe(1);
      return blocker;
    }

    /** What must be true once the late connection arrived: nothing leaked, nothing written. */
    async function expectNothingLeaked(when: string): Promise<void> {
      await eventually(() => checkedOut(t.dataSource) === 0).catch(() => {
        throw new Error(
          `leaked: ${checkedOut(t.dataSource)} connection(s) still checked out after the context ` +
            `ended (blocker freed ${when})`,
        );
      });
      expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
      expect(await t.rows()).toBe(0);
    }

    /** The app must shut down within 5 s (asserted only once nothing leaked; see the rescue). */
    async function expectCloses(): Promise<void> {
      closed = true;
      await within(t.close(), 'app.close()');
      expect(t.dataSource.isInitialized).toBe(false);
    }

    beforeEach(async () => {
      closed = false;
      late.insert = undefined;
      t = await createTestApp(engine, {
        poolSize: 1,
        controllers: [PoolWaitController],
        context: { acquireTimeout: ACQUIRE_TIMEOUT },
      });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    afterEach(async () => {
      if (closed) return;
      rescueLeakedConnections(t.dataSource);
      await within(t.close(), 'app.close() after a failed test').catch(() => undefined);
    });

    /**
     * The blocker is freed either before the session's wait for the pool timed out (the connection
     * arrives while the ended context still waits for it) or after it (the connection arrives when
     * nobody waits any more). Both must end the same way.
     */
    const freeTheBlockerAfter = [
      ['before acquireTimeout', ACQUIRE_TIMEOUT / 3],
      ['after acquireTimeout', ACQUIRE_TIMEOUT * 2],
    ] as const;

    it('runInNewContext(): the connection that arrives late goes back to the pool, the insert is not written, the app closes', async () => {
      for (const [when, ms] of freeTheBlockerAfter) {
        const blocker = await holdTheOnlyConnection();
        let insert: Promise<unknown> | undefined;
        const ended = settle(
          factory.runInNewContext(async () => {
            insert = context.session().insert(Example, { text: `late ${when}` });
            await Promise.all([insert, Promise.reject(new Error('the other branch failed'))]);
          }),
          `runInNewContext() (blocker freed ${when})`,
        );
        await sleep(ms); // the context ends while the insert waits for the pool
        await within(blocker.close(), 'closing the blocker');
        expect(await ended).toMatchObject({ ok: false, message: 'the other branch failed' });
        await settle(insert!, `the late insert (blocker freed ${when})`);
        await expectNothingLeaked(when);
      }
      await expectCloses();
    });

    it('over HTTP: 500, the connection that arrives late goes back to the pool, nothing is written, the app closes', async () => {
      for (const [when, ms] of freeTheBlockerAfter) {
        const blocker = await holdTheOnlyConnection();
        const response = within(
          t
            .http()
            .post('/pool-wait/fail-while-waiting')
            .then((res) => res),
          `the request (blocker freed ${when})`,
        );
        await sleep(ms);
        await within(blocker.close(), 'closing the blocker');
        expect((await response).status).toBe(500);
        await within(late.insert ?? Promise.resolve(), `the late insert (blocker freed ${when})`);
        await expectNothingLeaked(when);
      }
      await expectCloses();
    });
  },
);
