import { Injectable, Module } from '@nestjs/common';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { InjectDataSource, InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import type { DataSource, Repository } from 'typeorm';
import { HANG_MS, within } from '../correctness/support-b.js';
import { eventually, type TestApp } from '../support/create-app.js';
import { engines, txid } from '../support/engines.js';
import { Example, startJobsApp } from './jobs-support.js';

const CRON = 'plain-jobs-cron';

/** What the cron tick saw, for the test. */
const seen: { txids: Array<string | null>; session?: string | null; done: number } = {
  txids: [],
  done: 0,
};

/** A job written for typeorm-transactional: plain repositories and the DataSource's manager. */
@Injectable()
class PlainJob {
  fail = false;

  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  @Cron('0 0 1 1 *', { name: CRON }) // fired by hand below
  async nightly() {
    try {
      await this.examples.insert({ text: 'cron_repo' });
      await this.dataSource.manager.insert(Example, { text: 'cron_manager' });
      const engine = engines.find((e) => e.options.type === this.dataSource.options.type)!;
      seen.txids = [
        await txid(engine, this.examples.manager),
        await txid(engine, this.dataSource.manager),
      ];
      if (this.fail) throw new Error('the cron tick fails');
    } finally {
      seen.done++;
    }
  }
}

@Module({ imports: [TypeOrmModule.forFeature([Example])], providers: [PlainJob] })
class PlainJobModule {}

/** A scheduled job's plain TypeORM code, with plainTypeorm: 'join': one unit per tick. */
describe.each(engines)(
  "@Cron ticks with plain repositories, plainTypeorm: 'join' ($name)",
  (engine) => {
    let t: TestApp | undefined;

    afterEach(async () => {
      await t?.close();
      t = undefined;
    });

    it('commits a tick in one transaction, and rolls back one that throws', async () => {
      t = await startJobsApp(engine, {
        imports: [ScheduleModule.forRoot(), PlainJobModule],
        context: { plainTypeorm: 'join' },
      });
      const registry = t.app.get(SchedulerRegistry);
      const job = t.app.get(PlainJob);
      seen.done = 0;
      await registry.getCronJob(CRON).fireOnTick();
      await within(
        HANG_MS,
        'the first tick',
        eventually(() => seen.done === 1),
      );
      expect(seen.txids[0]).not.toBeNull();
      expect(seen.txids[1]).toBe(seen.txids[0]);
      await eventually(async () => (await t!.rows()) === 2);
      expect(await t.texts()).toEqual(['cron_manager', 'cron_repo']);
      await t.dataSource.query('DELETE FROM example');
      job.fail = true;
      await registry.getCronJob(CRON).fireOnTick();
      await within(
        HANG_MS,
        'the failing tick',
        eventually(() => seen.done === 2),
      );
      await t.expectClean();
      expect(await t.rows()).toBe(0);
    });
  },
);
