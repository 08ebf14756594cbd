import { Controller, type INestApplication, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  getDataSourceToken,
  InjectDataSource,
  InjectRepository,
  TypeOrmModule,
} from '@nestjs/typeorm';
import request from 'supertest';
import { DataSource, Repository } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransactionError } from '../../src/errors/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, sleep, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { checkedOut, engines, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Resolved when a handler began (the request's unit of work exists then). */
let entered: () => void = () => undefined;
/**
 * What the handlers wait for before they touch the database: the test lets them go once the
 * moment it attacks has come (its test rolled back, or the next test running), never a fixed
 * delay that a slow machine could outlast.
 */
let proceed: Promise<void> = Promise.resolve();
let letGo: () => void = () => undefined;
/** The plain TypeORM statement a request's timer runs after the request ended. */
let lateTimer: Promise<unknown> | undefined;
/** Makes the next handler wait until `letGo()`. */
function holdHandlers(): void {
  proceed = new Promise<void>((resolve) => (letGo = resolve));
}

/** Handlers that touch the database only when the test lets them: a test that does not await them ends first. */
@Controller('leftover')
class LeftoverController {
  constructor(
    private readonly context: SessionContext,
    private readonly dataSource: DataSource,
    @InjectRepository(Example) private readonly examples: Repository<Example>,
  ) {}

  /** Plain TypeORM in a handler (docs/testing.md: allowed, it waits for the test's connection). */
  @Post('plain')
  async plain() {
    entered();
    await proceed;
    await this.dataSource.query("INSERT INTO example (text) VALUES ('late plain')");
    return 'ok';
  }

  /** Plain TypeORM through `TypeOrmModule.forFeature()`'s repository (the data source's manager). */
  @Post('plain-repository')
  async plainRepository() {
    entered();
    await proceed;
    await this.examples.insert({ text: 'late repository' });
    return 'ok';
  }

  /** Answers at once; a timer of the request runs plain TypeORM once the test lets it. */
  @Post('plain-timer')
  plainTimer() {
    const late = proceed.then(() =>
      this.dataSource.query("INSERT INTO example (text) VALUES ('late timer plain')"),
    );
    late.catch(() => undefined); // handled now; the test awaits it later
    lateTimer = late;
    return 'ok';
  }

  /** The same through the unit's session (the case the fix covers): control. */
  @Post('session')
  async session() {
    entered();
    await proceed;
    await this.context.session().insert(Example, { text: 'late session' });
    return 'ok';
  }
}

/**
 * docs/testing.md: "Work that began during a test stays in its transaction after that: a request
 * ... that goes on after rollback() gets a TestTransactionError at its next statement. It never
 * runs on the pool, where it would commit for real, into the next test."
 */
describe.each(enginesAndSqlite)(
  'testing kit: work a test left running, after rollback() ($name)',
  (engine) => {
    let app: INestApplication;
    let dataSource: DataSource;

    /** Rows of `example` on the pool (outside any test transaction). */
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
          TypeOrmContextModule.forRoot({ acquireTimeout: 500 }),
          TypeOrmModule.forFeature([Example]),
        ],
        controllers: [LeftoverController],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      dataSource = app.get(DataSource);
      await dataSource.query('DELETE FROM example');
    });
    afterEach(() => dataSource.query('DELETE FROM example'));
    afterAll(() => within(app.close(), 'app.close()'));

    async function leftover(path: string) {
      const tx = await TestTransaction.start(app);
      holdHandlers();
      const began = new Promise<void>((resolve) => (entered = resolve));
      // Fired, not awaited: the handler touches the database only after the test rolled back.
      const response = within(
        new Promise<number>((resolve) =>
          request(app.getHttpServer())
            .post(path)
            .end((_, res) => resolve(res?.status ?? 0)),
        ),
        `POST ${path}`,
      );
      await within(began, `POST ${path} reaching its handler`);
      const rolledBack = await settle(tx.rollback(), 'tx.rollback()');
      letGo(); // the test is over: the handler's late statement now
      expect(rolledBack.ok).toBe(true);
      const status = await response;
      await sleep(50);
      return { status, committed: await committed(), checkedOut: checkedOut(dataSource) };
    }

    it('a late statement of the request through its session fails and commits nothing', async () => {
      const result = await leftover('/leftover/session');
      expect(result).toEqual({ status: 500, committed: [], checkedOut: 0 });
    });

    // Between the tests no TestTransaction changes the DataSource: the plain statement of a request
    // test 1 left running would run on the pool and commit for real. Before the fix: status 201,
    // 'late plain' committed.
    it('a late plain TypeORM statement of the request, between tests, fails and commits nothing', async () => {
      const result = await leftover('/leftover/plain');
      expect(result).toEqual({ status: 500, committed: [], checkedOut: 0 });
    });

    it('a late statement through a plain TypeORM repository, between tests, fails and commits nothing', async () => {
      const result = await leftover('/leftover/plain-repository');
      expect(result).toEqual({ status: 500, committed: [], checkedOut: 0 });
    });

    it("plain TypeORM in a timer of test 1's request, after the request ended and between tests, commits nothing", async () => {
      const tx = await TestTransaction.start(app);
      holdHandlers();
      await request(app.getHttpServer()).post('/leftover/plain-timer').expect(201);
      expect((await settle(tx.rollback(), 'tx.rollback()')).ok).toBe(true);
      letGo(); // the timer's statement now, no test running
      await expect(within(lateTimer!, "the timer's statement")).rejects.toBeInstanceOf(
        TestTransactionError,
      );
      expect(await committed()).toEqual([]);
      // Plain TypeORM of the test body itself (no unit of work) still runs on the pool then.
      await dataSource.query("INSERT INTO example (text) VALUES ('late fixture')");
      expect(await committed()).toEqual(['late fixture']);
    });

    // Expected (docs/testing.md, "never ... into the next test"): the request's plain TypeORM INSERT
    // began during test 1; while test 2's TestTransaction runs it must fail, not write into test 2.
    // Before the fix: it runs in test 2's transaction, which sees the row 'late plain' of test 1.
    it("a late plain TypeORM statement of test 1's request never lands in test 2's transaction", async () => {
      const tx1 = await TestTransaction.start(app);
      holdHandlers();
      const began = new Promise<void>((resolve) => (entered = resolve));
      const response = within(
        new Promise<number>((resolve) =>
          request(app.getHttpServer())
            .post('/leftover/plain')
            .end((_, res) => resolve(res?.status ?? 0)),
        ),
        'POST /leftover/plain',
      );
      await within(began, 'POST /leftover/plain reaching its handler');
      expect((await settle(tx1.rollback(), 'tx1.rollback()')).ok).toBe(true);
      const tx2 = await TestTransaction.start(app); // the next test
      letGo(); // test 1's late statement while test 2 runs
      try {
        const status = await response;
        const seenInTest2 = await committed();
        expect({ status, seenInTest2 }).toEqual({ status: 500, seenInTest2: [] });
      } finally {
        await settle(tx2.rollback(), 'tx2.rollback()');
      }
      expect(await committed()).toEqual([]);
    });

    // A job that test 1's unit of work schedules (setTimeout inside runInNewContext, the unit awaited)
    // and that writes in a runInNewContext() of its own when the timer fires, while test 2 runs. The
    // timer callback runs in the async context of test 1's unit (the new unit's outer frame is that
    // unit's): it is work of test 1 and must never run in test 2 (docs/testing.md: work
    // born in test 1 never runs in test 2 nor on the pool). Before the fix: the new unit is "born" when the
    // timer fires, so its write lands in test 2's transaction, which sees the row of test 1's job.
    it("a timer test 1's unit scheduled writes in runInNewContext() during test 2: not into test 2", async () => {
      const factory = app.get(SessionFactory);
      const context = app.get(SessionContext);
      let job: Promise<unknown> | undefined;
      const tx1 = await TestTransaction.start(app);
      await factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'test 1' });
        setTimeout(() => {
          job = settle(
            factory.runInNewContext(() =>
              context.session().insert(Example, { text: 'late timer' }),
            ),
            "the timer's job",
          );
        }, 150);
      });
      expect((await settle(tx1.rollback(), 'tx1.rollback()')).ok).toBe(true);
      const tx2 = await TestTransaction.start(app); // the next test
      try {
        await sleep(300);
        await within(job ?? Promise.resolve(), "the timer's job");
        expect(await committed()).toEqual([]);
      } finally {
        await settle(tx2.rollback(), 'tx2.rollback()');
      }
      expect(await committed()).toEqual([]);
    });

    // The same job when no test runs as the timer fires: it must fail, not commit on the pool.
    // Before the fix: the write commits for real.
    it("a timer test 1's unit scheduled writes in runInNewContext() after rollback(): never on the pool", async () => {
      const factory = app.get(SessionFactory);
      const context = app.get(SessionContext);
      let job: Promise<unknown> | undefined;
      const tx1 = await TestTransaction.start(app);
      await factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'test 1' });
        setTimeout(() => {
          job = settle(
            factory.runInNewContext(() =>
              context.session().insert(Example, { text: 'late timer' }),
            ),
            "the timer's job",
          );
        }, 150);
      });
      expect((await settle(tx1.rollback(), 'tx1.rollback()')).ok).toBe(true);
      await sleep(300);
      await within(job ?? Promise.resolve(), "the timer's job");
      expect(await committed()).toEqual([]);
    });
  },
);

/** A handler that writes, once let go, through plain TypeORM of a data source the test does not cover. */
@Controller('uncovered')
class UncoveredController {
  constructor(@InjectDataSource('other') private readonly other: DataSource) {}

  @Post()
  async write() {
    entered();
    await proceed;
    await this.other.query("INSERT INTO example (text) VALUES ('late uncovered')");
    return 'ok';
  }
}

/**
 * docs/testing.md: a data source `TestTransaction.start(app, { dataSources })` leaves out runs on
 * the pool, during the test and after it: refusing the late work of an ended test concerns only
 * the data sources it covered.
 */
describe.each(engines)('testing kit: a data source the test does not cover ($name)', (engine) => {
  let app: INestApplication;
  let other: DataSource;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmModule.forRoot(typeormOptions(engine, 10, 'other')),
        TypeOrmContextModule.forRoot({ acquireTimeout: 500, dataSources: ['default', 'other'] }),
      ],
      controllers: [UncoveredController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    other = app.get<DataSource>(getDataSourceToken('other'));
    await other.query('DELETE FROM example');
  });
  afterAll(async () => {
    await other.query('DELETE FROM example');
    await within(app.close(), 'app.close()');
  });

  it('late plain TypeORM of it, after rollback(), still runs on the pool', async () => {
    const tx = await TestTransaction.start(app, { dataSources: ['default'] });
    holdHandlers();
    const began = new Promise<void>((resolve) => (entered = resolve));
    const response = request(app.getHttpServer()).post('/uncovered');
    const status = within(
      new Promise<number>((resolve) => response.end((_, res) => resolve(res?.status ?? 0))),
      'POST /uncovered',
    );
    await within(began, 'POST /uncovered reaching its handler');
    expect((await settle(tx.rollback(), 'tx.rollback()')).ok).toBe(true);
    letGo();
    expect(await status).toBe(201);
    const rows = (await other.query('SELECT text FROM example')) as Array<{ text: string }>;
    expect(rows.map((row) => row.text)).toEqual(['late uncovered']);
  });
});
