import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, within } from '../correctness/support-a.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/**
 * A REQUIRES_NEW block (or a factory session) inside a unit of work under the testing kit (fuzz
 * counterexample, seed 1002). The block is a savepoint of its unit's transaction once that has begun, so a later failure
 * of the unit undoes it. Before the unit's first statement, or after its `commit()` and before its
 * next statement, the unit has no transaction: the block's savepoint stands alone in the test's
 * transaction and outlives the unit's failure, as its commit does on the pool. Either way nothing
 * reaches the pool: after `tx.rollback()` the table is empty (afterEach).
 */
describe.each(enginesAndSqlite)('TestTransaction: REQUIRES_NEW inside a unit ($name)', (engine) => {
  let t: TestApp;
  let app: INestApplication;
  let dataSource: DataSource;
  let context: SessionContext;
  let factory: SessionFactory;
  let tx: TestTransaction | undefined;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot()],
    }).compile();
    app = moduleRef.createNestApplication({ logger: process.env.TEST_LOG ? ['error'] : false });
    await app.init();
    dataSource = app.get(DataSource);
    context = app.get(SessionContext);
    factory = app.get(SessionFactory);
    await dataSource.query('DELETE FROM example');
    t = wrap(app, engine, dataSource);
  });
  afterEach(async () => {
    if (tx) await settle(tx.rollback(), 'tx.rollback()');
    tx = undefined;
    // Outside the test transaction: nothing of it reached the pool.
    expect(await t.rows()).toBe(0);
    await t.expectClean();
  });
  afterAll(() => within(app.close(), 'app.close()'));

  /** Rows the test sees through the app's DataSource (inside its transaction while it runs). */
  const texts = async () =>
    (
      (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{ text: string }>
    ).map((row) => row.text);

  const requiresNew = () =>
    context.atomic(() => context.session().insert(Example, { text: 'inner' }), {
      propagation: Propagation.REQUIRES_NEW,
    });

  /** Runs a unit that does `first`, then a REQUIRES_NEW block, then throws; rows seen inside the test. */
  const failingUnit = async (first: () => Promise<void>) => {
    tx = await TestTransaction.start(app);
    const result = await settle(
      factory.runInNewContext(async () => {
        await first();
        await requiresNew();
        throw new Error('the unit fails');
      }),
      'runInNewContext()',
    );
    expect(result).toMatchObject({ ok: false });
    return texts();
  };

  it('after a statement of the unit: the block is undone with the unit', async () => {
    const seen = await failingUnit(async () => {
      await context.session().insert(Example, { text: 'before' });
    });
    expect(seen).toEqual([]);
  });

  it("as the unit's first statement: the block outlives the unit's failure until tx.rollback()", async () => {
    expect(await failingUnit(async () => undefined)).toEqual(['inner']);
  });

  it("after the unit's commit(): the block outlives the unit's failure until tx.rollback()", async () => {
    const seen = await failingUnit(async () => {
      await context.session().insert(Example, { text: 'committed' });
      await context.commit();
    });
    expect(seen).toEqual(['committed', 'inner']);
  });

  /** Runs a unit that does `first`, then commits a factory session, then throws; rows seen inside the test. */
  const failingUnitWithSession = async (first: () => Promise<void>) => {
    tx = await TestTransaction.start(app);
    const result = await settle(
      factory.runInNewContext(async () => {
        await first();
        await using session = factory.open();
        await session.manager.insert(Example, { text: 'factory' });
        await session.commit();
        throw new Error('the unit fails');
      }),
      'runInNewContext()',
    );
    expect(result).toMatchObject({ ok: false });
    return texts();
  };

  it('a factory session after a statement of the unit: undone with the unit', async () => {
    const seen = await failingUnitWithSession(async () => {
      await context.session().insert(Example, { text: 'before' });
    });
    expect(seen).toEqual([]);
  });

  it("a factory session after the unit's commit(): outlives the unit's failure until tx.rollback()", async () => {
    const seen = await failingUnitWithSession(async () => {
      await context.session().insert(Example, { text: 'committed' });
      await context.commit();
    });
    expect(seen).toEqual(['committed', 'factory']);
  });
});
