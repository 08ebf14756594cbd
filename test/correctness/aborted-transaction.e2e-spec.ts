import { Controller, Post } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { type Failure, settle, sleep } from './support-a.js';

/** A statement PostgreSQL refuses, which aborts the transaction it ran in. */
const FAILING = 'SELECT 1/0';

/** Runs the failing statement and swallows its error, as careless code does. */
async function failAndCatch(manager: EntityManager): Promise<void> {
  await manager.query(FAILING).then(
    () => {
      throw new Error(`${FAILING} was expected to fail`);
    },
    () => undefined,
  );
}

/** What the commit of a transaction PostgreSQL had aborted must fail with. */
function expectAborted(result: unknown): void {
  expect(result).toMatchObject({ ok: false, name: 'TransactionAbortedError' });
  const { message } = result as Failure;
  expect(message).toMatch(/aborted/i);
  expect(message).toMatch(/fail/i); // by an earlier failed statement
  expect(message).toMatch(/NESTED/); // the way to catch and continue
}

@Controller('aborted')
class AbortedController {
  constructor(private readonly context: SessionContext) {}

  /** Inserts, runs a failing statement, catches its error and returns normally. */
  @Post('caught')
  async caught() {
    const session = this.context.session();
    await session.insert(Example, { text: 'before_failure' });
    await failAndCatch(session);
    return 'ok';
  }

  /** The same failure inside a NESTED block: the savepoint takes it, the outer work commits. */
  @Post('nested')
  async nested() {
    await this.context.session().insert(Example, { text: 'outer' });
    await this.context
      .atomic(failAndCatchInBlock, { propagation: Propagation.NESTED })
      .catch(() => undefined);
    return 'ok';
  }

  /** The same failure inside TypeORM's manager.transaction() (a savepoint on the session). */
  @Post('manager-transaction')
  async managerTransaction() {
    const session = this.context.session();
    await session.insert(Example, { text: 'outer' });
    await session.transaction(failAndCatchInBlock).catch(() => undefined);
    return 'ok';
  }
}

/** Inside a savepoint: the failing statement's error escapes the block, which rolls back to it. */
async function failAndCatchInBlock(manager: EntityManager): Promise<void> {
  await manager.insert(Example, { text: 'inner_rolled_back' });
  await manager.query(FAILING);
}

const postgres: Engine[] = engines.filter((engine) => engine.name === 'postgres');

describe.each(postgres)(
  'a transaction PostgreSQL aborted is never reported as committed ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine, { controllers: [AbortedController] });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('over HTTP: a handler that caught a failed statement gets 500, not 201, and nothing is written', async () => {
      const response = await t.http().post('/aborted/caught').timeout(5000);
      expect(response.status).toBe(500);
      expect(await t.rows()).toBe(0);
    });

    it('runInNewContext() rejects with TransactionAbortedError (naming NESTED); nothing is written', async () => {
      const result = await settle(
        factory.runInNewContext(async () => {
          const session = context.session();
          await session.insert(Example, { text: 'before_failure' });
          await failAndCatch(session);
        }),
        'runInNewContext()',
      );
      expectAborted(result);
      expect(await t.rows()).toBe(0);
    });

    it('sessionContext.commit() in that state rejects with TransactionAbortedError; nothing is written', async () => {
      const seen: { commit?: unknown } = {};
      await settle(
        factory.runInNewContext(async () => {
          const session = context.session();
          await session.insert(Example, { text: 'before_failure' });
          await failAndCatch(session);
          seen.commit = await settle(context.commit(), 'sessionContext.commit()');
        }),
        'runInNewContext()',
      );
      expectAborted(seen.commit);
      expect(await t.rows()).toBe(0);
    });

    it('sessionFactory.atomic() rejects with TransactionAbortedError; nothing is written', async () => {
      const result = await settle(
        factory.atomic(async (manager) => {
          await manager.insert(Example, { text: 'before_failure' });
          await failAndCatch(manager);
        }),
        'sessionFactory.atomic()',
      );
      expectAborted(result);
      expect(await t.rows()).toBe(0);
    });

    it('sessionFactory.open() + session.commit() rejects with TransactionAbortedError; nothing is written', async () => {
      const session = factory.open();
      try {
        await session.manager.insert(Example, { text: 'before_failure' });
        await failAndCatch(session.manager);
        expectAborted(await settle(session.commit(), 'session.commit()'));
      } finally {
        await session.close();
      }
      expect(await t.rows()).toBe(0);
    });

    it('positive control: the failure inside a NESTED block, caught, keeps the outer work (201 / resolves, outer rows)', async () => {
      await t.http().post('/aborted/nested').timeout(5000).expect(201);
      expect(await t.texts()).toEqual(['outer']);
      const result = await settle(
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'outer_ctx' });
          await context
            .atomic(failAndCatchInBlock, { propagation: Propagation.NESTED })
            .catch(() => undefined);
        }),
        'runInNewContext()',
      );
      expect(result).toMatchObject({ ok: true });
      expect(await t.texts()).toEqual(['outer', 'outer_ctx']);
    });

    it('positive control: the failure inside manager.transaction(), caught, keeps the outer work (201, 1 row)', async () => {
      await t.http().post('/aborted/manager-transaction').timeout(5000).expect(201);
      expect(await t.texts()).toEqual(['outer']);
    });
  },
);

/* ---------------------------------------------------------------------------------------------- */

const mariadb: Engine[] = engines.filter((engine) => engine.name === 'mariadb');

/** A table of this file's own, with rows both transactions lock. */
const TABLE = 'deadlock_a';

// A loop, not describe.each: without MYSQL_URL there is no MariaDB engine and nothing to declare.
for (const engine of mariadb)
  describe(`a deadlock victim never commits half of its work (${engine.name})`, () => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine);
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
      await t.dataSource.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await t.dataSource.query(
        `CREATE TABLE ${TABLE} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`,
      );
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM example');
      await t.dataSource.query(`DELETE FROM ${TABLE}`);
      const ids = Array.from({ length: 12 }, (_, i) => `(${i + 1}, 0)`).join(', ');
      await t.dataSource.query(`INSERT INTO ${TABLE} (id, v) VALUES ${ids}`);
    });
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await t.dataSource.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await t.close();
    });

    it('after a caught deadlock (1213) the context rejects with TransactionAbortedError and none of its rows exist', async () => {
      const seen: { deadlock?: unknown } = {};
      const other = factory.open();
      let result: Awaited<ReturnType<typeof settle>>;
      try {
        // The other transaction modifies many rows (so InnoDB picks the context as the victim)
        // and holds row 1.
        await other.manager.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 1 OR id > 2`);
        result = await settle(
          factory.runInNewContext(async () => {
            const victim = context.session();
            await victim.insert(Example, { text: 'victim_before' });
            await victim.query(`UPDATE ${TABLE} SET v = v + 10 WHERE id = 2`);
            // The victim waits for row 1 (held by the other) ...
            const blocked = victim.query(`UPDATE ${TABLE} SET v = v + 10 WHERE id = 1`);
            blocked.catch(() => undefined);
            await sleep(200);
            // ... and the other now wants row 2 (held by the victim): a deadlock.
            await other.manager.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 2`);
            seen.deadlock = await settle(blocked, 'the victim update');
            // InnoDB rolled the whole transaction back: this must not be committed on its own.
            await victim.insert(Example, { text: 'victim_after' });
          }),
          'runInNewContext()',
          8000,
        );
        await other.commit();
      } finally {
        await other.close();
      }
      // The scenario really produced a deadlock, with the context as its victim.
      expect(seen.deadlock).toMatchObject({ ok: false, error: { driverError: { errno: 1213 } } });
      // None of the victim's rows exist: neither before the deadlock nor after it ...
      expect(await t.texts()).toEqual([]);
      // ... and its update of row 2 is gone too, while the other's updates committed.
      const rows: Array<{ id: number; v: number }> = await t.dataSource.query(
        `SELECT id, v FROM ${TABLE} WHERE id IN (1, 2) ORDER BY id`,
      );
      expect(rows.map((row) => Number(row.v))).toEqual([1, 1]);
      // The context must say that its transaction was aborted instead of reporting success.
      expect(result).toMatchObject({ ok: false, name: 'TransactionAbortedError' });
    });
  });
