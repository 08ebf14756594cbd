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
import { typeormOptions } from '../support/create-app.js';
import { checkedOut, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const NOT_SUPPORTED = { propagation: Propagation.NOT_SUPPORTED };

/*
 * docs/testing.md: a unit that begins inside the code of another nests in it, and so do the
 * statements of a NOT_SUPPORTED block: on the test's one connection, which the transaction the
 * block suspends holds, they run in that transaction's turn, each in a savepoint of its own (as
 * if it autocommitted). They are seen by the test and rolled back with it; unlike on the pool, a
 * later rollback of the unit undoes them too.
 */
describe.each(enginesAndSqlite)(
  'testing kit: NOT_SUPPORTED inside a TestTransaction ($name)',
  (engine) => {
    let app: INestApplication;
    let dataSource: DataSource;
    let factory: SessionFactory;
    let context: SessionContext;
    let tx: TestTransaction | undefined;

    const texts = async () =>
      (
        (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{
          text: string;
        }>
      ).map((row) => row.text);

    /** Runs `work` in a test transaction; what the test saw, then nothing is left after it. */
    const inTest = async <T>(work: () => Promise<T>, what: string) => {
      tx = await TestTransaction.start(app);
      try {
        const outcome = await within(
          work().catch((error: Error) => `${error.name}: ${error.message}`),
          what,
        );
        return { outcome, seen: await texts() };
      } finally {
        await settle(tx.rollback(), 'tx.rollback()');
        tx = undefined;
      }
    };

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot(typeormOptions(engine)),
          TypeOrmContextModule.forRoot({ acquireTimeout: 500 }),
          TypeOrmModule.forFeature([Example]),
        ],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      dataSource = app.get(DataSource);
      factory = app.get(SessionFactory);
      context = app.get(SessionContext);
      await dataSource.query('DELETE FROM example');
    });
    afterEach(async () => {
      expect(await texts()).toEqual([]);
      expect(checkedOut(dataSource)).toBe(0);
    });
    afterAll(() => within(app.close(), 'app.close()'));

    it('a NOT_SUPPORTED block in a unit whose transaction has begun: its write is seen by the test, then rolled back', async () => {
      const result = await inTest(
        () =>
          factory.runInNewContext(async () => {
            await context.session().insert(Example, { text: 'outer' });
            await context.atomic(
              (manager) => manager.insert(Example, { text: 'audit' }),
              NOT_SUPPORTED,
            );
            return 'ok';
          }),
        'a unit with a NOT_SUPPORTED block under the kit',
      );
      expect(result).toEqual({ outcome: 'ok', seen: ['audit', 'outer'] });
    });

    it("its own transaction (manager.transaction()) and a block inside an owned block's transaction nest too", async () => {
      const result = await inTest(
        () =>
          factory.atomic(async (manager) => {
            await manager.insert(Example, { text: 'outer' });
            await context.atomic(
              (plain) => plain.transaction((inner) => inner.insert(Example, { text: 'audit' })),
              NOT_SUPPORTED,
            );
            return 'ok';
          }),
        'an owned block with a NOT_SUPPORTED block using a transaction of its own under the kit',
      );
      expect(result).toEqual({ outcome: 'ok', seen: ['audit', 'outer'] });
    });

    it("a failing statement of the block leaves the unit's transaction usable (a savepoint of its own)", async () => {
      const result = await inTest(
        () =>
          factory.runInNewContext(async () => {
            await context.session().insert(Example, { text: 'outer' });
            const failed = await context
              .atomic((manager) => manager.query('SELECT * FROM no_such_table'), NOT_SUPPORTED)
              .then(
                () => 'resolved',
                (error: Error) => error.name, // the server's answer, not a wait for the connection
              );
            await context.session().insert(Example, { text: 'after' });
            return failed;
          }),
        'a unit whose NOT_SUPPORTED statement fails under the kit',
      );
      expect(result).toEqual({ outcome: 'QueryFailedError', seen: ['after', 'outer'] });
    });

    it('unlike on the pool, a later rollback of the unit undoes the block too (documented)', async () => {
      const result = await inTest(
        () =>
          factory.runInNewContext(async () => {
            await context.session().insert(Example, { text: 'outer' });
            await context.atomic(
              (manager) => manager.insert(Example, { text: 'audit' }),
              NOT_SUPPORTED,
            );
            throw new Error('the unit failed');
          }),
        'a unit that fails after its NOT_SUPPORTED block under the kit',
      );
      expect(result).toEqual({ outcome: 'Error: the unit failed', seen: [] });
    });

    it('a NOT_SUPPORTED block of a unit that waits for another unit holding the connection fails with a message naming NOT_SUPPORTED', async () => {
      const result = await inTest(async () => {
        let began!: () => void;
        const begun = new Promise<void>((resolve) => (began = resolve));
        let settled!: (outcome: Promise<string>) => void;
        const blocked = new Promise<string>((resolve) => (settled = resolve));
        const holder = factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'holder' });
          began();
          return blocked; // holds the connection until the other unit's block is done
        });
        await begun;
        // An unrelated unit, begun by the test body: on the pool its block takes a connection of its own.
        settled(
          factory
            .runInNewContext(() =>
              context.atomic(
                (manager) => manager.insert(Example, { text: 'audit' }),
                NOT_SUPPORTED,
              ),
            )
            .then(
              () => 'ok',
              (error: Error) => `${error.name}: ${error.message}`,
            ),
        );
        return holder;
      }, 'a unit awaiting another one whose NOT_SUPPORTED block needs the connection');
      expect(result.seen).toEqual(['holder']);
      expect(result.outcome).toMatch(
        /^ConnectionAcquireTimeoutError: A NOT_SUPPORTED block of data source 'default' waited 500 ms/,
      );
    });
  },
);
