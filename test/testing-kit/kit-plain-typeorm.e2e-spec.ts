import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  type AfterQueryEvent,
  DataSource,
  type EntitySubscriberInterface,
  EventSubscriber,
} from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, sleep, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { checkedOut, enginesAndSqlite, isSqliteEngine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** The subscriber's action while a test sets it. */
const probe: { after?: (event: AfterQueryEvent) => Promise<void> } = {};

@EventSubscriber()
class Probe implements EntitySubscriberInterface {
  async afterQuery(event: AfterQueryEvent) {
    await probe.after?.(event);
  }
}

const ACQUIRE_TIMEOUT = 500;

/** Plain TypeORM of the test body and of handlers inside a TestTransaction (docs/testing.md). */
describe.each(enginesAndSqlite)(
  'testing kit: plain TypeORM inside a TestTransaction ($name)',
  (engine) => {
    let app: INestApplication;
    let dataSource: DataSource;
    let context: SessionContext;
    let factory: SessionFactory;
    let tx: TestTransaction | undefined;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ ...typeormOptions(engine), subscribers: [Probe] }),
          TypeOrmContextModule.forRoot({ acquireTimeout: ACQUIRE_TIMEOUT }),
        ],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      dataSource = app.get(DataSource);
      context = app.get(SessionContext);
      factory = app.get(SessionFactory);
      await dataSource.query('DELETE FROM example');
    });
    beforeEach(() => {
      probe.after = undefined;
    });
    afterEach(async () => {
      probe.after = undefined;
      if (tx) await settle(tx.rollback(), 'tx.rollback()');
      tx = undefined;
      await dataSource.query('DELETE FROM example');
      expect(checkedOut(dataSource)).toBe(0);
    });
    afterAll(() => within(app.close(), 'app.close()', 3000).catch(() => undefined));

    // docs/testing.md: plain TypeORM used while a unit of work holds the test's connection "waits
    // until no unit holds the connection, at most acquireTimeout" (ConnectionAcquireTimeoutError).
    // A query builder's stream() is plain TypeORM too. Before the fix: it waits with no bound (the
    // runner's stream goes to SharedConnection.send without a lease, not through lendToBody), so
    // the unit waits forever for its own stream.
    it('a plain TypeORM stream() in a unit fails after acquireTimeout instead of hanging', async () => {
      tx = await TestTransaction.start(app);
      const result = await settle(
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'unit' });
          const stream = await dataSource
            .createQueryBuilder(Example, 'e')
            .select('e.text', 'text')
            .stream();
          for await (const row of stream) void row;
        }),
        'runInNewContext() with a plain TypeORM stream() inside',
        ACQUIRE_TIMEOUT + 2500,
      );
      if (isSqliteEngine(engine)) {
        // SQLite: the plain builder joins the unit (plainTypeorm 'warn'), whose driver cannot stream.
        expect(result).toMatchObject({
          ok: false,
          message: expect.stringMatching(/Stream is not supported/),
        });
        return;
      }
      expect(result).toMatchObject({ ok: false, name: 'ConnectionAcquireTimeoutError' });
    });

    // docs/testing.md: "Each statement outside a transaction runs in a savepoint of its own, so one
    // that fails ... leaves the test's transaction usable, as autocommit would." A subscriber query
    // that fails (caught by the subscriber) in the afterQuery of the test body's INSERT: under
    // autocommit the INSERT commits, the subscriber's query fails alone, the next statement runs.
    // Before the fix, on PostgreSQL: the subscriber's failure aborts the INSERT's own savepoint, its RELEASE
    // fails, the INSERT rejects, and the test's whole transaction stays aborted (every later statement
    // of the test fails with "current transaction is aborted").
    it("the test body's INSERT whose subscriber query fails (caught): as autocommit, the test goes on", async () => {
      tx = await TestTransaction.start(app);
      let once = false;
      probe.after = async (event) => {
        if (once || !/^INSERT/i.test(event.query)) return;
        once = true;
        await event.queryRunner.query('SELECT * FROM no_such_table_review').catch(() => undefined);
      };
      const insert = await settle(
        dataSource.query("INSERT INTO example (text) VALUES ('body')"),
        'the INSERT',
      );
      probe.after = undefined;
      const next = await settle(dataSource.query('SELECT text FROM example'), 'the next statement');
      expect({
        insert: insert.ok ? 'ok' : insert.message,
        next: next.ok ? next.value : next.message,
      }).toEqual({
        insert: 'ok',
        next: [{ text: 'body' }],
      });
    });

    // The same runner used twice at once by the test body (as plain TypeORM allows: the driver queues
    // the second statement): the second runs alone, as autocommit would. Before the fix: while the first
    // runs, the second is sent straight inside the first's savepoint (the "subscriber's query"
    // shortcut), so when the first fails the second is undone (or, on PostgreSQL, fails too).
    it('two statements on one runner of the test body, the first failing late: the second commits alone', async () => {
      tx = await TestTransaction.start(app);
      const runner = dataSource.createQueryRunner();
      try {
        const failingLate =
          engine.name === 'postgres'
            ? "DO $$ BEGIN PERFORM pg_sleep(0.3); RAISE EXCEPTION 'late failure'; END $$"
            : 'SELECT SLEEP(0.3) AS s, (SELECT 1 FROM DUAL WHERE SLEEP(0) = 0 UNION ALL SELECT 2) AS x';
        const first = settle(runner.query(failingLate), 'the first statement');
        await sleep(100); // the first runs now
        const second = settle(
          runner.query("INSERT INTO example (text) VALUES ('second')"),
          'the second statement',
        );
        const [a, b] = await Promise.all([first, second]);
        const rows = await settle(dataSource.query('SELECT text FROM example'), 'rows');
        expect({
          first: a.ok,
          second: b.ok ? 'ok' : b.message,
          rows: rows.ok ? rows.value : rows.message,
        }).toEqual({
          first: false,
          second: 'ok',
          rows: [{ text: 'second' }],
        });
      } finally {
        await runner.release();
      }
    });
  },
);
