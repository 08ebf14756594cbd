import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { checkedOut, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** What the work a test leaves running waits for: the test lets it go after rollback(). */
let proceed: Promise<void> = Promise.resolve();
let letGo: () => void = () => undefined;
function holdWork(): void {
  proceed = new Promise<void>((resolve) => (letGo = resolve));
}

@Injectable()
class Late {
  constructor(
    readonly context: SessionContext,
    readonly dataSource: DataSource,
    @InjectRepository(Example) readonly examples: Repository<Example>,
  ) {}

  /** An audit write that must stand apart from the unit's transaction (docs/transactions.md). */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async audit(text: string) {
    await this.context.session().insert(Example, { text });
  }

  /** Raw SQL through the block's manager (SessionContext.session() is the block's plain manager there). */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async auditSql(text: string) {
    await this.context.session().query(`INSERT INTO example (text) VALUES ('${text}')`);
  }

  /** A transaction of the block's plain manager (docs/testing.md: "the transactions of their plain manager"). */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async auditInTransaction(text: string) {
    await this.context.session().transaction((manager) => manager.insert(Example, { text }));
  }

  /** Plain `dataSource.transaction()` inside a NOT_SUPPORTED block. */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async plainTransactionAudit(text: string) {
    await this.dataSource.transaction((manager) => manager.insert(Example, { text }));
  }

  /** Plain TypeORM through the data source's manager inside a NOT_SUPPORTED block. */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async plainManagerAudit(text: string) {
    await this.dataSource.manager.query(`INSERT INTO example (text) VALUES ('${text}')`);
  }

  /** Plain TypeORM inside a NOT_SUPPORTED block (with `plainTypeorm: 'join'` it runs on the block's manager). */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async plainAudit(text: string) {
    await this.dataSource.query(`INSERT INTO example (text) VALUES ('${text}')`);
  }
}

/**
 * docs/testing.md: work a unit of the test runs "that goes on after rollback() gets a
 * TestTransactionError at its next statement through its sessions: it never runs on the pool,
 * where it would commit for real ... Its plain TypeORM (the DataSource's own query(), manager,
 * createQueryBuilder(), repositories of TypeOrmModule.forFeature()) fails the same way, between
 * tests as while a later test runs."
 */
describe.each(engines)(
  'testing kit: plain TypeORM of work test 1 left running, between tests ($name)',
  (engine) => {
    for (const plainTypeorm of ['warn', 'join', 'off'] as const) {
      describe(`plainTypeorm: '${plainTypeorm}'`, () => {
        let app: INestApplication;
        let dataSource: DataSource;
        let late: Late;
        let factory: SessionFactory;

        /** Rows of `example` on the pool. */
        const committed = async () =>
          (
            (await dataSource.query("SELECT text FROM example WHERE text LIKE 'late%'")) as Array<{
              text: string;
            }>
          ).map((row) => row.text);

        beforeAll(async () => {
          const moduleRef = await Test.createTestingModule({
            imports: [
              TypeOrmModule.forRoot(typeormOptions(engine)),
              TypeOrmContextModule.forRoot({ acquireTimeout: 500, plainTypeorm }),
              TypeOrmModule.forFeature([Example]),
            ],
            providers: [Late],
          }).compile();
          app = moduleRef.createNestApplication({ logger: false });
          await app.init();
          dataSource = app.get(DataSource);
          late = app.get(Late);
          factory = app.get(SessionFactory);
          await dataSource.query('DELETE FROM example');
        });
        afterEach(() => dataSource.query('DELETE FROM example'));
        afterAll(() => within(app.close(), 'app.close()'));

        /**
         * Runs `work` in a unit of work born in a test (`runInNewContext()`, not awaited): `before`
         * at once, `after` once the test rolled back. Returns how `after` ended, and what is
         * committed on the pool then.
         */
        async function leftover<T>(before: () => T, after: (made: T) => Promise<unknown>) {
          const tx = await TestTransaction.start(app);
          holdWork();
          let made!: () => void;
          const ready = new Promise<void>((resolve) => (made = resolve));
          const job = settle(
            factory.runInNewContext(async () => {
              const value = before();
              made();
              await proceed;
              return after(value);
            }),
            'the late job',
          );
          await within(ready, 'the job starting');
          expect((await settle(tx.rollback(), 'tx.rollback()')).ok).toBe(true);
          letGo(); // test 1 is over: its job's late statement now
          const result = await job;
          return {
            error: result.ok ? 'none' : result.name,
            committed: await committed(),
            checkedOut: checkedOut(dataSource),
          };
        }

        // A NOT_SUPPORTED block opened by the unit after rollback() runs on the block's bounded
        // manager, whose runners come from the data source's createQueryRunner: the kit's, which
        // refuses them, not the pool's.
        it("the unit's NOT_SUPPORTED block (a library repository / SessionContext in it) commits nothing", async () => {
          const result = await leftover(
            () => undefined,
            () => late.audit('late not-supported'),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // The same block's manager sending SQL itself (EntityManager.query() takes
        // `this.connection.createQueryRunner()`, the bounded manager's).
        it("raw SQL through the unit's NOT_SUPPORTED block manager (SessionContext.session().query) commits nothing", async () => {
          const result = await leftover(
            () => undefined,
            () => late.auditSql('late not-supported sql'),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // With 'join', dataSource.manager.query() in that block runs on the block's bounded manager.
        it('plain dataSource.manager.query() in a NOT_SUPPORTED block of the unit commits nothing', async () => {
          const result = await leftover(
            () => undefined,
            () => late.plainManagerAudit('late plain manager not-supported'),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // EntityManager.transaction() of the block's bounded manager: its statements carry the
        // runner it took. Before: rollback() gave the data source its own createQueryRunner back,
        // and this transaction committed on the pool (both modes).
        it("a transaction of the unit's NOT_SUPPORTED block manager commits nothing", async () => {
          const result = await leftover(
            () => undefined,
            () => late.auditInTransaction('late not-supported transaction'),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // 'join' joins plain dataSource.transaction() in that block to the same bounded manager.
        it('plain dataSource.transaction() in a NOT_SUPPORTED block of the unit commits nothing', async () => {
          const result = await leftover(
            () => undefined,
            () => late.plainTransactionAudit('late plain transaction not-supported'),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // dataSource.query() in that block.
        it('plain TypeORM in a NOT_SUPPORTED block of the unit commits nothing', async () => {
          const result = await leftover(
            () => undefined,
            () => late.plainAudit('late plain not-supported'),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // A query builder the unit made during the test (plain TypeORM, allowed then) takes its
        // runner when executed. Before: after rollback() that was the pool's, and it committed.
        it('a query builder made during the test and executed after rollback() commits nothing', async () => {
          const result = await leftover(
            () =>
              dataSource
                .createQueryBuilder()
                .insert()
                .into(Example)
                .values({ text: 'late builder' }),
            (builder) => builder.execute(),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        it("a forFeature repository's query builder made during the test, executed after rollback(), commits nothing", async () => {
          const result = await leftover(
            () => late.examples.createQueryBuilder().insert().values({ text: 'late repo builder' }),
            (builder) => builder.execute(),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        // The same statements made after rollback() are refused.
        it('a query builder made after rollback() is refused', async () => {
          const result = await leftover(
            () => undefined,
            () =>
              Promise.resolve().then(() =>
                dataSource
                  .createQueryBuilder()
                  .insert()
                  .into(Example)
                  .values({ text: 'late builder 2' })
                  .execute(),
              ),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        it('dataSource.transaction() begun after rollback() is refused', async () => {
          const result = await leftover(
            () => undefined,
            () =>
              dataSource.transaction((manager) =>
                manager.insert(Example, { text: 'late transaction' }),
              ),
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        it('dataSource.getRepository() and createEntityManager() after rollback() are refused', async () => {
          const repo = await leftover(
            () => undefined,
            () => dataSource.getRepository(Example).insert({ text: 'late getRepository' }),
          );
          const made = await leftover(
            () => undefined,
            () =>
              dataSource
                .createEntityManager()
                .insert(Example, { text: 'late createEntityManager' }),
          );
          expect({ repo, made }).toEqual({
            repo: { error: 'TestTransactionError', committed: [], checkedOut: 0 },
            made: { error: 'TestTransactionError', committed: [], checkedOut: 0 },
          });
        });

        it('a query runner of its own (dataSource.createQueryRunner()) after rollback() is refused', async () => {
          const result = await leftover(
            () => undefined,
            async () => {
              const runner = dataSource.createQueryRunner();
              try {
                await runner.query("INSERT INTO example (text) VALUES ('late own runner')");
              } finally {
                await runner.release();
              }
            },
          );
          expect(result).toEqual({ error: 'TestTransactionError', committed: [], checkedOut: 0 });
        });

        it('plain TypeORM of the test body after rollback() (no unit of work) runs on the pool', async () => {
          const tx = await TestTransaction.start(app);
          await settle(tx.rollback(), 'tx.rollback()');
          await dataSource.query("INSERT INTO example (text) VALUES ('late fixture')");
          await dataSource.getRepository(Example).insert({ text: 'late fixture 2' });
          expect((await committed()).sort()).toEqual(['late fixture', 'late fixture 2']);
        });
      });
    }
  },
);
