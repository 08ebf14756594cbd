import { Inject, Injectable } from '@nestjs/common';
import { Cron, Interval, ScheduleModule, SchedulerRegistry, Timeout } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';
import { InjectSession, Transactional } from '../../src/index.js';
import { HANG_MS, within } from '../correctness/support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import {
  currentTx,
  Example,
  importOrders,
  ordered,
  type Run,
  signal,
  startJobsApp,
  writers,
} from './jobs-support.js';

const PROBE = 'SCHEDULE_PROBE';
const TICKS = 'jobs-ticks';
const CRON = 'jobs-cron';

/** What the test and the scheduled methods share. */
class Probe {
  readonly runs: Run[] = [];
  readonly ticked = signal();
  readonly timedOut = signal();
  /** Ticks of the interval before it stops itself. */
  ticks = 4;
  constructor(readonly engine: Engine) {}
}

@Injectable()
class Ticks {
  private count = 0;
  private done = 0;

  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    @InjectSession() private readonly session: EntityManager,
    private readonly registry: SchedulerRegistry,
    @Inject(PROBE) private readonly probe: Probe,
  ) {}

  /** Writes two rows a tick; the second tick throws after writing. Ticks may overlap. */
  @Interval(TICKS, 50)
  async tick() {
    const n = ++this.count;
    if (n > this.probe.ticks) return;
    if (n === this.probe.ticks) this.registry.deleteInterval(TICKS);
    try {
      await this.write(`tick${n}`);
      if (n === 2) throw new Error('the second tick fails');
    } finally {
      if (++this.done === this.probe.ticks) this.probe.ticked.resolve();
    }
  }

  @Timeout(10)
  @Transactional() // joins the tick's unit
  async once() {
    await this.write('timeout');
    this.probe.timedOut.resolve();
  }

  @Cron('0 0 1 1 *', { name: CRON }) // fired by hand below
  async nightly() {
    await this.write('cron');
    throw new Error('the cron tick fails');
  }

  private async write(name: string) {
    await this.examples.insert({ text: name });
    await this.session.insert(Example, { text: `${name}/2` });
    this.probe.runs.push({ name, txid: await currentTx(this.probe.engine, this.session) });
  }
}

/** Whether a PostgreSQL `xmin` (32 bits) is the transaction `txid` (64 bits, with its epoch). */
const wrote = (xmin: string | undefined, txid: string | null) =>
  txid !== null && xmin !== undefined && BigInt(xmin) === BigInt(txid) % 2n ** 32n;

describe.each(engines)('@nestjs/schedule methods run each tick in a unit ($name)', (engine) => {
  let t: TestApp | undefined;
  let probe: Probe;

  async function start(first: boolean, context = {}) {
    probe = new Probe(engine);
    t = await startJobsApp(engine, {
      ...ordered(first, [ScheduleModule.forRoot()]),
      context,
      providers: [Ticks, { provide: PROBE, useValue: probe }],
    });
    return t.app.get(SchedulerRegistry);
  }

  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  describe.each(importOrders)('%s', (_order, first) => {
    it('each tick commits in a transaction of its own; a throwing tick rolls back and the schedule goes on', async () => {
      await start(first);
      await within(HANG_MS, 'four ticks', probe.ticked.promise);
      await within(HANG_MS, 'the timeout', probe.timedOut.promise);
      const ticks = probe.runs.filter((run) => run.name.startsWith('tick'));
      expect(ticks.map((run) => run.name).sort()).toEqual(['tick1', 'tick2', 'tick3', 'tick4']);
      expect(new Set(probe.runs.map((run) => run.txid)).size).toBe(probe.runs.length);
      expect(probe.runs.every((run) => run.txid !== null)).toBe(true);
      await t!.expectClean();
      expect(await t!.texts()).toEqual(
        ['tick1', 'tick3', 'tick4', 'timeout'].flatMap((name) => [name, `${name}/2`]).sort(),
      );
      const xmins = await writers(engine, t!.dataSource);
      for (const run of probe.runs.filter((r) => r.name !== 'tick2')) {
        if (xmins) expect(wrote(xmins.get(run.name), run.txid)).toBe(true);
        if (xmins) expect(wrote(xmins.get(`${run.name}/2`), run.txid)).toBe(true);
      }
    });

    it('a cron tick that throws rolls back', async () => {
      const registry = await start(first);
      probe.ticks = 0;
      await registry.getCronJob(CRON).fireOnTick();
      await within(
        HANG_MS,
        'the cron tick',
        waitFor(() => probe.runs.some((r) => r.name === 'cron')),
      );
      await t!.expectClean();
      expect(await t!.texts()).not.toContain('cron');
      expect(probe.runs.find((run) => run.name === 'cron')?.txid).not.toBeNull();
    });
  });

  it('jobs: false leaves the methods as they are: each statement commits alone', async () => {
    await start(true, { jobs: false });
    await within(HANG_MS, 'four ticks', probe.ticked.promise);
    await t!.expectClean();
    // The throwing tick kept its rows, and a tick saw no transaction of its own.
    expect(await t!.texts()).toContain('tick2/2');
    expect(probe.runs.find((run) => run.name === 'tick1')?.txid).toBeNull();
  });
});

async function waitFor(probe: () => boolean): Promise<void> {
  while (!probe()) await new Promise((resolve) => setTimeout(resolve, 10));
}
