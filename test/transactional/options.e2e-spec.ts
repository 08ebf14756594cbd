import type { DataSource, EntityManager } from 'typeorm';
import {
  type IsolationLevel,
  Propagation,
  SessionContext,
  SessionFactory,
  TransactionTimeoutError,
} from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite, isSqliteEngine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { Contention } from './contention.js';
import { OptionsService } from './options.service.js';

/** The database's own refusal of a write in a READ ONLY transaction. */
function readOnlyViolation(engine: Engine) {
  if (isSqliteEngine(engine))
    return { driverError: expect.objectContaining({ message: expect.stringMatching(/readonly/) }) };
  return engine.name === 'postgres'
    ? { driverError: expect.objectContaining({ code: '25006' }) }
    : { driverError: expect.objectContaining({ errno: 1792 }) };
}

/** Server-side statements still running `SELECT pg_sleep(2)` / `SELECT SLEEP(2)`. */
async function sleepingQueries(engine: Engine, dataSource: DataSource): Promise<number> {
  const sql =
    engine.name === 'postgres'
      ? "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(2)%' AND pid <> pg_backend_pid()"
      : "SELECT count(*) AS n FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(2)%'";
  const rows: Array<{ n: number | string }> = await dataSource.query(sql);
  return Number(rows[0]?.n);
}

const count = async (manager: EntityManager) => manager.count(Example);

describe.each(enginesAndSqlite)('transaction options ($name)', (engine) => {
  let t: TestApp;
  let service: OptionsService;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine, { providers: [OptionsService] });
    service = t.app.get(OptionsService);
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
    await Contention.reset(t.dataSource);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  describe('readOnly', () => {
    beforeEach(() => t.dataSource.query("INSERT INTO example (text) VALUES ('existing')"));

    it('@Transactional({ readOnly }): reads work, the database refuses the INSERT, nothing persists', async () => {
      const seen: { rows?: number } = {};
      await expect(service.readOnlyInsert(seen)).rejects.toMatchObject(readOnlyViolation(engine));
      expect(seen.rows).toBe(1);
      expect(await t.texts()).toEqual(['existing']);
    });

    it('a REQUIRES_NEW block in a context and sessionFactory.open() are read-only too', async () => {
      await factory.runInNewContext(async () => {
        const block = context.atomic(
          async (manager) => {
            expect(await count(manager)).toBe(1);
            await manager.insert(Example, { text: 'block_write' });
          },
          { propagation: Propagation.REQUIRES_NEW, readOnly: true },
        );
        await expect(block).rejects.toMatchObject(readOnlyViolation(engine));
      });
      await using session = factory.open({ readOnly: true });
      expect(await count(session.manager)).toBe(1);
      await expect(
        session.manager.insert(Example, { text: 'session_write' }),
      ).rejects.toMatchObject(readOnlyViolation(engine));
      await session.rollback();
      expect(await t.texts()).toEqual(['existing']);
    });
  });

  // Isolation levels, statements cancelled on the server and conflicts between connections: SQLite
  // has one connection and no isolation levels to name, so these run on the server engines only.
  if (!isSqliteEngine(engine)) {
    describe('isolationLevel', () => {
      it.each<[IsolationLevel, number]>([
        ['REPEATABLE READ', 0],
        ['READ COMMITTED', 1],
      ])(
        '%s: a row another connection commits mid-transaction is seen %i time(s)',
        async (isolationLevel, seenAfter) => {
          const [before, after] = await factory.atomic(
            async (manager) => {
              const first = await count(manager);
              await t.dataSource.query("INSERT INTO example (text) VALUES ('concurrent')");
              return [first, await count(manager)];
            },
            { isolationLevel },
          );
          expect(before).toBe(0);
          expect(after).toBe(seenAfter);
          expect(await t.rows()).toBe(1);
        },
      );
    });

    describe('timeout', () => {
      /** Runs `attempt`, expecting a timeout well before the 2 s sleep ends, and checks the server. */
      async function expectCancelled(attempt: () => Promise<unknown>) {
        const started = Date.now();
        await expect(attempt()).rejects.toBeInstanceOf(TransactionTimeoutError);
        expect(Date.now() - started).toBeLessThan(1500);
        expect(await t.rows()).toBe(0);
        await t.expectClean();
        await eventually(async () => (await sleepingQueries(engine, t.dataSource)) === 0, 1500);
        // The statement was stopped on the server, not left to finish its 2 s.
        expect(Date.now() - started).toBeLessThan(1800);
      }

      it('@Transactional({ timeout: 300 }) outside a context: rejected, rolled back, nothing left running', async () => {
        await expectCancelled(() => service.sleepy(engine.sleepSql(2)));
      });

      it('a REQUIRES_NEW block with timeout 300 in a context: the same, and the outer work commits', async () => {
        await expectCancelled(() =>
          factory.runInNewContext(() =>
            context.atomic(
              async (manager) => {
                await manager.insert(Example, { text: 'before_sleep' });
                await manager.query(engine.sleepSql(2));
              },
              { propagation: Propagation.REQUIRES_NEW, timeout: 300 },
            ),
          ),
        );
        await factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'outer' });
          const block = context.atomic((manager) => manager.query(engine.sleepSql(2)), {
            propagation: Propagation.REQUIRES_NEW,
            timeout: 300,
          });
          await expect(block).rejects.toBeInstanceOf(TransactionTimeoutError);
        });
        expect(await t.texts()).toEqual(['outer']);
      });
    });

    describe('retry', () => {
      let contention: Contention;
      beforeEach(async () => {
        await Contention.reset(t.dataSource);
        contention = new Contention(engine, t.dataSource);
        service.attempts = 0;
        service.body = (manager, attempt) => contention.block(manager, attempt);
      });

      /** Rows 1 and 2 once both transactions committed (block + 1, other side + 10). */
      const bothCommitted = (): [number, number] =>
        engine.name === 'postgres' ? [11, 0] : [11, 11];
      /** Rows 1 and 2 when only the other side committed. */
      const otherOnly = (): [number, number] => (engine.name === 'postgres' ? [10, 0] : [10, 10]);
      const conflict = engine.name === 'postgres' ? { code: '40001' } : { errno: 1213 };

      it('a REQUIRES_NEW block outside any context hits a real conflict, is re-run and commits', async () => {
        await Promise.all([service.ownRetrying(), contention.other()]);
        expect(service.attempts).toBe(2);
        expect(await Contention.counters(t.dataSource)).toEqual(bothCommitted());
      });

      it('a REQUIRES_NEW block in a context is re-run on its own connection; the outer work stays', async () => {
        await Promise.all([
          factory.runInNewContext(async () => {
            await context.session().insert(Example, { text: 'outer' });
            await service.ownRetrying();
          }),
          contention.other(),
        ]);
        expect(service.attempts).toBe(2);
        expect(await Contention.counters(t.dataSource)).toEqual(bothCommitted());
        expect(await t.texts()).toEqual(['outer']);
      });

      it('joined into an outer REQUIRED transaction it is not re-run: the error escapes', async () => {
        const outer = factory.atomic(() => service.joinedRetrying(), {
          isolationLevel: 'REPEATABLE READ',
        });
        const [result, other] = await Promise.allSettled([outer, contention.other()]);
        expect(other.status).toBe('fulfilled');
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason).toMatchObject({
          driverError: expect.objectContaining(conflict),
        });
        expect(service.attempts).toBe(1);
        expect(await Contention.counters(t.dataSource)).toEqual(otherOnly());
      });
    });
  }
});
