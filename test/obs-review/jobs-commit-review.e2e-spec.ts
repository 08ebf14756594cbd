import { Injectable } from '@nestjs/common';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { record } from './recorder.js';

const CRON = 'obs-review-cron';

@Injectable()
class Nightly {
  constructor(private readonly context: SessionContext) {}

  @Cron('0 0 1 1 *', { name: CRON }) // fired by hand
  async run() {
    await this.context.session().query("INSERT INTO example (text) VALUES ('cron')");
  }
}

/** Review of the `unit` channel for a job tick, and of a failed COMMIT (docs/observability.md). */
describe.each(engines)('tracing channels, jobs and commit failures ($name)', (engine: Engine) => {
  let t: TestApp;
  let recorder: ReturnType<typeof record> | undefined;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      imports: [ScheduleModule.forRoot()],
      providers: [Nightly],
    });
  });
  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    await t.dataSource.query('DELETE FROM example');
  });
  afterAll(() => t.close());

  it("a @Cron tick: one unit of kind 'job', committed", async () => {
    recorder = record(['unit']);
    await t.app.get(SchedulerRegistry).getCronJob(CRON).fireOnTick();
    await eventually(() => recorder!.events.some((e) => e.event === 'asyncEnd'));
    expect(recorder.names()).toEqual(['unit:start', 'unit:asyncStart', 'unit:asyncEnd']);
    expect(recorder.events.at(-1)!.message).toMatchObject({ kind: 'job', outcome: 'committed' });
    expect(await t.texts()).toEqual(['cron']);
  });
});

/** PostgreSQL only: MariaDB has no deferred constraint to fail a COMMIT with. */
describe.each(engines.filter((e) => e.name === 'postgres'))(
  'tracing channels, a failed COMMIT ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let recorder: ReturnType<typeof record> | undefined;

    beforeAll(async () => {
      t = await createTestApp(engine);
      await t.dataSource.query('DROP TABLE IF EXISTS obsr_deferred');
      await t.dataSource.query(
        'CREATE TABLE obsr_deferred (id int PRIMARY KEY, ref int REFERENCES obsr_deferred (id) DEFERRABLE INITIALLY DEFERRED)',
      );
    });
    afterEach(() => {
      recorder?.stop();
      recorder = undefined;
    });
    afterAll(() => t.close());

    it("a COMMIT that fails: unit outcome 'error', the caller's error on the message", async () => {
      recorder = record(['unit', 'transaction']);
      const context = t.app.get(SessionContext);
      const factory = t.app.get(SessionFactory);
      const error = await factory
        .runInNewContext(() =>
          context.session().query('INSERT INTO obsr_deferred (id, ref) VALUES (1, 99)'),
        )
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      const end = recorder.events.find((e) => e.channel === 'unit' && e.event === 'asyncEnd')!;
      expect(end.message.outcome).toBe('error');
      expect(end.message.error).toBe(error);
      expect(recorder.names()).toEqual([
        'unit:start',
        'unit:error',
        'unit:asyncStart',
        'unit:asyncEnd',
      ]);
      const owned = await factory
        .atomic((manager) => manager.query('INSERT INTO obsr_deferred (id, ref) VALUES (2, 99)'))
        .catch((e: unknown) => e);
      const block = recorder.events.find(
        (e) => e.channel === 'transaction' && e.event === 'asyncEnd',
      )!;
      expect(block.message).toMatchObject({
        mode: 'begin',
        outcome: 'rolled back',
        reason: 'error',
      });
      expect(block.message.error).toBe(owned);
    });
  },
);
