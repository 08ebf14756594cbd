import { Injectable } from '@nestjs/common';
import { SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  AUDIT,
  busyWait,
  closeApp,
  createTwoDataSourceApp,
  HANG_MS,
  terminateServerConnections,
  type TwoDataSourceApp,
  within,
} from './support-b.js';

/** How often the retried method ran. */
const runs = { count: 0 };

@Injectable()
class TwoDatabaseWriter {
  constructor(private readonly context: SessionContext) {}

  /**
   * Owns its transaction (called outside any context): writes to 'default' first, so that
   * session is created first and commits first, then to 'audit', whose COMMIT fails.
   */
  @Transactional({ retry: 2 })
  async write(): Promise<void> {
    runs.count++;
    await this.context.session().insert(Example, { text: 'default_write' });
    await this.context.session(AUDIT).query("INSERT INTO audit_log (flag) VALUES ('conflict')");
  }
}

/**
 * A COMMIT that fails with a serialization failure only PostgreSQL can stage deterministically: a
 * deferred constraint trigger runs at COMMIT and raises SQLSTATE 40001. MariaDB reports deadlocks
 * (1213) and lock wait timeouts (1205) at the statement that waits, never at COMMIT, so there is no
 * way to make its COMMIT fail on cue; the MariaDB half of this scenario cannot be written.
 */
describe.each(engines.filter((engine) => engine.name === 'postgres'))(
  'retry never re-runs work that already committed ($name)',
  (engine: Engine) => {
    let t: TwoDataSourceApp;

    beforeAll(async () => {
      t = await createTwoDataSourceApp(engine, { providers: [TwoDatabaseWriter] });
      for (const sql of [
        'DROP TABLE IF EXISTS audit_log',
        'DROP FUNCTION IF EXISTS audit_log_conflict()',
        'CREATE TABLE audit_log (id serial PRIMARY KEY, flag text NOT NULL)',
        `CREATE FUNCTION audit_log_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.flag = 'conflict' THEN
             RAISE EXCEPTION 'conflict' USING ERRCODE = '40001';
           END IF;
           RETURN NULL;
         END $$`,
        `CREATE CONSTRAINT TRIGGER audit_log_conflict AFTER INSERT ON audit_log
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_log_conflict()`,
      ]) {
        await t.audit.query(sql);
      }
    });
    beforeEach(async () => {
      runs.count = 0;
      await t.dataSource.query('DELETE FROM example');
      await t.audit.query('DELETE FROM audit_log');
    });
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await t?.audit.query('DROP TABLE IF EXISTS audit_log');
      await t?.audit.query('DROP FUNCTION IF EXISTS audit_log_conflict()');
      await closeApp(t, engine);
    });

    it("@Transactional({ retry }) whose second data source's COMMIT fails after the first committed: runs once, rejects with PartlyCommittedError", async () => {
      const writer = t.app.get(TwoDatabaseWriter);
      const failure = await within(
        HANG_MS,
        '@Transactional({ retry: 2 }) with a failing second COMMIT',
        writer.write().then(
          () => undefined,
          (error: unknown) => error,
        ),
        () => terminateServerConnections(engine),
      );
      expect(runs.count).toBe(1);
      expect(await t.texts()).toEqual(['default_write']);
      const audit: Array<{ n: number | string }> = await t.audit.query(
        'SELECT count(*) AS n FROM audit_log',
      );
      expect(Number(audit[0]?.n)).toBe(0);
      // The block partly committed: PartlyCommittedError, the COMMIT's error as its cause.
      expect(failure).toMatchObject({
        name: 'PartlyCommittedError',
        message: expect.stringMatching(
          /^TwoDatabaseWriter\.write\(\) failed after part .*'default'/,
        ),
        cause: expect.objectContaining({
          message: expect.stringMatching(/conflict/),
          driverError: expect.objectContaining({ code: '40001' }),
        }),
      });
    });
  },
);

describe.each(engines)('transaction timeout against late errors ($name)', (engine: Engine) => {
  let t: TestApp;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  it('an error thrown after a CPU-bound step that outlived the timeout stays that error; a real timeout is still TransactionTimeoutError', async () => {
    const late = await within(
      HANG_MS,
      'atomic() whose block fails after a busy wait',
      factory
        .atomic(
          async () => {
            busyWait(350);
            throw new Error('boom');
          },
          { timeout: 300 },
        )
        .then(
          () => undefined,
          (error: Error) => error,
        ),
    );
    expect({ name: late?.name, message: late?.message }).toEqual({
      name: 'Error',
      message: 'boom',
    });

    const timedOut = await within(
      HANG_MS,
      'atomic() whose statement outlives the timeout',
      factory
        .atomic(
          async (manager) => {
            await manager.insert(Example, { text: 'timed_out' });
            await manager.query(engine.sleepSql(2));
          },
          { timeout: 300 },
        )
        .then(
          () => undefined,
          (error: Error) => error,
        ),
    );
    expect(timedOut?.name).toBe('TransactionTimeoutError');
    expect(await t.rows()).toBe(0);
  });
});
