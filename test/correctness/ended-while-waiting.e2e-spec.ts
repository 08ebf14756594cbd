/**
 * A session whose context ends (rolled back: a failing unit) while its statement waits for a
 * connection of a full pool stops waiting at once: the statement fails with
 * SessionContextEndedError then, not when a connection comes or acquireTimeout expires, and the
 * connection that comes later goes back to the pool. (A unit that succeeds commits what it issued:
 * its commit waits for that statement, see "a succeeding unit waits" below.)
 */
import { Controller, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import {
  type Session,
  SessionContext,
  SessionContextEndedError,
  SessionFactory,
} from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import {
  checkedOut,
  enginesAndSqlite,
  idleInTransaction,
  waitingForPool,
} from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { TestTransaction } from '../../src/testing/index.js';
import { outcome, sleep, within } from './support-a.js';

/** Far longer than any assertion below waits: a wait that is not stopped is seen. */
const ACQUIRE_TIMEOUT = 60_000;

/** The HTTP scenario's waiting insert, so that the test can wait for its fate. */
const late: { insert?: Promise<unknown> } = {};

@Controller('ended-wait')
class EndedWaitController {
  constructor(
    private readonly context: SessionContext,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  /** An insert that waits for the pool, next to a branch that fails once it waits: the request fails. */
  @Post('fail')
  async fail() {
    const insert = this.context.session().insert(Example, { text: 'late_http' });
    late.insert = outcome(insert);
    const failing = eventually(() => waitingForPool(this.dataSource) === 1).then(() => {
      throw new Error('the other branch failed');
    });
    await Promise.all([insert, failing]);
    return 'unreachable';
  }
}

describe.each(enginesAndSqlite)(
  'a session whose context ends while it waits for the pool ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;
    let blocker: Session | undefined;

    /** Holds the pool's only connection with an independent session that has queried. */
    async function holdTheOnlyConnection(): Promise<Session> {
      blocker = factory.open();
      await blocker.manager.query('SELECT 1');
      expect(checkedOut(t.dataSource)).toBe(1);
      return blocker;
    }

    /** Frees the pool, then checks that nothing is held, open or written. */
    async function expectNothingLeft(): Promise<void> {
      await within(blocker!.close(), 'closing the blocker');
      blocker = undefined;
      await eventually(() => checkedOut(t.dataSource) === 0);
      expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
      expect(await t.rows()).toBe(0);
    }

    beforeEach(async () => {
      late.insert = undefined;
      t = await createTestApp(engine, {
        poolSize: 1,
        controllers: [EndedWaitController],
        context: { acquireTimeout: ACQUIRE_TIMEOUT },
      });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    afterEach(async () => {
      await blocker?.close().catch(() => undefined);
      blocker = undefined;
      await t.close();
    });

    it('a failing runInNewContext(): its waiting insert fails with SessionContextEndedError while the pool is still full', async () => {
      await holdTheOnlyConnection();
      let insert: Promise<unknown> | undefined;
      const ended = factory.runInNewContext(async () => {
        insert = context.session().insert(Example, { text: 'late' });
        insert.catch(() => undefined);
        await eventually(() => waitingForPool(t.dataSource) === 1);
        throw new Error('the unit fails');
      });
      // It rolls back at once: nothing of it reached the database.
      await expect(within(ended, 'the failing unit')).rejects.toThrow('the unit fails');
      // The blocker still holds the only connection: only a stopped wait can answer now.
      await expect(within(insert!, 'the waiting insert')).rejects.toBeInstanceOf(
        SessionContextEndedError,
      );
      expect(checkedOut(t.dataSource)).toBe(1);
      await expectNothingLeft();
    });

    it('two statements of one session waiting at once both fail at once', async () => {
      await holdTheOnlyConnection();
      const waiting: Promise<unknown>[] = [];
      const ended = factory.runInNewContext(async () => {
        const session = context.session();
        waiting.push(
          session.insert(Example, { text: 'first' }),
          session.query('SELECT 1'),
          context.session().createQueryBuilder(Example, 'e').getCount(),
        );
        for (const one of waiting) one.catch(() => undefined);
        await eventually(() => waitingForPool(t.dataSource) === 1); // one session, one ask
        throw new Error('the unit fails');
      });
      await expect(within(ended, 'the failing unit')).rejects.toThrow('the unit fails');
      const results = await within(Promise.all(waiting.map(outcome)), 'the waiting statements');
      expect(results.map((result) => (result.ok ? 'ok' : result.name))).toEqual([
        'SessionContextEndedError',
        'SessionContextEndedError',
        'SessionContextEndedError',
      ]);
      await expectNothingLeft();
    });

    it('a succeeding unit waits: the statement it issued and did not await is committed once the pool frees', async () => {
      await holdTheOnlyConnection();
      let insert: Promise<unknown> | undefined;
      const ended = factory.runInNewContext(() => {
        insert = context.session().insert(Example, { text: 'issued' });
        insert.catch(() => undefined);
      });
      await within(blocker!.close(), 'closing the blocker');
      blocker = undefined;
      await within(ended, 'the unit');
      await within(insert!, 'the insert');
      await eventually(() => checkedOut(t.dataSource) === 0);
      expect(await t.texts()).toEqual(['issued']);
    });

    it('over HTTP: the request fails, its waiting insert fails with SessionContextEndedError at once', async () => {
      await holdTheOnlyConnection();
      const response = await within(
        t
          .http()
          .post('/ended-wait/fail')
          .then((res) => res),
        'the request',
      );
      expect(response.status).toBe(500);
      expect(await within(late.insert!, 'the waiting insert')).toMatchObject({
        ok: false,
        name: 'SessionContextEndedError',
      });
      expect(checkedOut(t.dataSource)).toBe(1);
      await expectNothingLeft();
    });

    it('in a test of the testing kit: a failing unit waiting for the turn of the test connection stops waiting at once', async () => {
      const tx = await TestTransaction.start(t.app);
      try {
        const holder = factory.open(); // the test's connection is lent to it until it closes
        await holder.manager.query('SELECT 1');
        let insert: Promise<unknown> | undefined;
        const ended = factory.runInNewContext(async () => {
          insert = context.session().insert(Example, { text: 'late' });
          insert.catch(() => undefined);
          await sleep(100); // the kit's queue is not observable: the insert waits by then
          throw new Error('the unit fails');
        });
        await expect(within(ended, 'the failing unit')).rejects.toThrow('the unit fails');
        await expect(within(insert!, 'the waiting insert')).rejects.toBeInstanceOf(
          SessionContextEndedError,
        );
        await within(holder.close(), 'closing the holder');
        await within(
          factory.runInNewContext(() => context.session().insert(Example, { text: 'after' })),
          'a unit after it',
        );
        expect(await t.texts()).toEqual(['after']);
      } finally {
        await tx.rollback();
      }
      expect(await t.rows()).toBe(0);
      expect(checkedOut(t.dataSource)).toBe(0);
    });

    it('a context that ends while its session waits, then a new context: the new one gets the pool when it frees', async () => {
      await holdTheOnlyConnection();
      for (let round = 0; round < 3; round++) {
        let insert: Promise<unknown> | undefined;
        const ended = factory.runInNewContext(async () => {
          insert = context.session().insert(Example, { text: `late ${round}` });
          insert.catch(() => undefined);
          // The asks of the earlier rounds are still queued in the pool.
          await eventually(() => waitingForPool(t.dataSource) === round + 1);
          throw new Error('the unit fails');
        });
        await expect(within(ended, 'the failing unit')).rejects.toThrow('the unit fails');
        await expect(within(insert!, 'the waiting insert')).rejects.toBeInstanceOf(
          SessionContextEndedError,
        );
      }
      // Three abandoned asks queue in the pool before this one: each goes back as it arrives.
      const later = factory.runInNewContext(() =>
        context.session().insert(Example, { text: 'kept' }),
      );
      await within(blocker!.close(), 'closing the blocker');
      blocker = undefined;
      await within(later, 'the later context');
      await eventually(() => checkedOut(t.dataSource) === 0);
      expect(await t.texts()).toEqual(['kept']);
    });
  },
);
