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
import { outcome, settle, sleep, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { engines } from '../support/engines.js';

const ROWS = 60;

/** A subscriber that, after the unit's UPDATE of row 2, best-effort updates row 1 (an audit). */
const probe: { armed: boolean; locked?: () => void; error?: string } = { armed: false };

@EventSubscriber()
class AuditProbe implements EntitySubscriberInterface {
  async afterQuery(event: AfterQueryEvent) {
    if (!probe.armed || !/WHERE id = 2/.test(event.query)) return;
    probe.armed = false;
    probe.locked?.();
    try {
      await event.queryRunner.query('UPDATE review_lock SET n = n + 1 WHERE id = 1'); // deadlocks
    } catch (error) {
      probe.error = (error as { driverError?: { code?: string } }).driverError?.code ?? 'error';
    }
  }
}

/**
 * 5e7da3b: on MySQL/MariaDB, "after a deadlock rolled back the test's whole transaction, its later
 * statements fail with TestTransactionError instead of committing for real in autocommit mode".
 * Here the deadlocked statement is a subscriber's, sent through event.queryRunner in afterQuery
 * (d8aaca3: part of the statement whose event it handles), and the subscriber catches its error.
 * Expected: the unit fails (its session sees the rollback: TransactionAbortedError), and the test's
 * later statements (its body's, a later unit's) fail with TestTransactionError; nothing commits.
 * Before the fix (MariaDB): the subscriber's statement bypasses the shared connection's queue, so the
 * test transaction never learns the server rolled it back: the test's later statements run in
 * autocommit mode and commit for real.
 */
describe.each(engines.filter((e) => e.name === 'mariadb'))(
  'testing kit: a deadlock in a subscriber query inside a TestTransaction ($name)',
  (engine) => {
    let app: INestApplication;
    let dataSource: DataSource;
    let side: DataSource;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ ...typeormOptions(engine), subscribers: [AuditProbe] }),
          TypeOrmContextModule.forRoot(),
        ],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      dataSource = app.get(DataSource);
      await dataSource.query('DELETE FROM example');
      side = new DataSource({ ...engine.options, poolSize: 2, logging: false });
      await side.initialize();
      await side.query('DROP TABLE IF EXISTS review_lock');
      await side.query('CREATE TABLE review_lock (id INT PRIMARY KEY, n INT NOT NULL)');
      const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, 0)`).join(', ');
      await side.query(`INSERT INTO review_lock (id, n) VALUES ${values}`);
    });
    afterAll(async () => {
      await side.query('DELETE FROM example');
      await side.query('DROP TABLE IF EXISTS review_lock');
      await side.destroy();
      await within(app.close(), 'app.close()');
    });

    it("a caught deadlock in a subscriber's query: the test's later statements fail, nothing commits", async () => {
      const tx = await TestTransaction.start(app);
      const context = app.get(SessionContext);
      const factory = app.get(SessionFactory);
      const other = side.createQueryRunner();
      let unit: Awaited<ReturnType<typeof settle>> | undefined;
      let body: Awaited<ReturnType<typeof settle>> | undefined;
      let later: Awaited<ReturnType<typeof settle>> | undefined;
      try {
        await other.connect();
        await other.startTransaction();
        await other.query('UPDATE review_lock SET n = n + 1 WHERE id >= 10'); // the heavier one
        await other.query('UPDATE review_lock SET n = n + 1 WHERE id = 1');

        const rowTwoLocked = new Promise<void>((resolve) => (probe.locked = resolve));
        probe.armed = true;
        const running = settle(
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.query('UPDATE review_lock SET n = n + 1 WHERE id = 2');
            await session.insert('example', { text: 'after the deadlock' });
          }),
          'the unit',
          10_000,
        );
        await within(rowTwoLocked, 'the unit locking row 2');
        await sleep(200); // the subscriber now waits for row 1
        const closing = outcome(other.query('UPDATE review_lock SET n = n + 1 WHERE id = 2'));
        unit = await running;
        await within(closing, "the other connection's statement", 10_000);
        // The test goes on: its body, then a later unit.
        body = await settle(
          dataSource.query("INSERT INTO example (text) VALUES ('test body after')"),
          "the test body's INSERT",
        );
        later = await settle(
          factory.runInNewContext(() =>
            context.session().insert('example', { text: 'a later unit' }),
          ),
          'a later unit',
        );
      } finally {
        await other.rollbackTransaction().catch(() => undefined);
        await other.release();
        await settle(tx.rollback(), 'tx.rollback()');
      }
      const committed: Array<{ text: string }> = await side.query('SELECT text FROM example');
      expect({
        subscriber: probe.error,
        unit: unit?.ok ? 'ok' : unit?.name,
        body: body?.ok ? 'ok' : body?.name,
        later: later?.ok ? 'ok' : later?.name,
        committed,
      }).toEqual({
        subscriber: 'ER_LOCK_DEADLOCK',
        unit: 'TransactionAbortedError',
        body: 'TestTransactionError',
        later: 'TestTransactionError',
        committed: [],
      });
    });
  },
);
