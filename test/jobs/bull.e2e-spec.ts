import { Inject, Injectable } from '@nestjs/common';
import { BullModule, InjectQueue, OnQueueCompleted, Process, Processor } from '@nestjs/bull';
import { InjectRepository } from '@nestjs/typeorm';
import type { Job, Queue } from 'bull';
import type { EntityManager, Repository } from 'typeorm';
import { InjectSession, SessionContext } from '../../src/index.js';
import { HANG_MS, within } from '../correctness/support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { hasContext } from './bullmq-app.js';
import {
  currentTx,
  dropPrefix,
  Example,
  importOrders,
  newPrefix,
  ordered,
  redis,
  type Run,
  signal,
  startJobsApp,
} from './jobs-support.js';

const QUEUE = 'jobs-legacy';
const PROBE = 'BULL_PROBE';

class Probe {
  readonly runs: Run[] = [];
  readonly completed = signal<boolean>();
  constructor(readonly engine: Engine) {}
}

/** A processor of the legacy package: `@Process()` methods, not `process()`. */
@Processor(QUEUE)
class LegacyProcessor {
  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    @InjectSession() private readonly session: EntityManager,
    private readonly context: SessionContext,
    @Inject(PROBE) private readonly probe: Probe,
  ) {}

  @Process('write')
  async write(job: Job<{ text: string }>) {
    const name = `${job.data.text}#${job.attemptsMade}`;
    await this.examples.insert({ text: name });
    await this.session.insert(Example, { text: `${name}/2` });
    this.probe.runs.push({ name, txid: await currentTx(this.probe.engine, this.session) });
    if (job.attemptsMade === 0) throw new Error('the first attempt fails');
  }

  @OnQueueCompleted()
  done() {
    this.probe.completed.resolve(hasContext(this.context));
  }
}

@Injectable()
class Jobs {
  constructor(@InjectQueue(QUEUE) readonly queue: Queue) {}
}

describe.each(engines)('@nestjs/bull processors ($name)', (engine) => {
  let t: TestApp | undefined;
  let prefix: string;

  afterEach(async () => {
    await t?.close();
    t = undefined;
    await dropPrefix(prefix);
  });

  it.each(importOrders)(
    'with %s, each attempt is a unit: the failed one leaves nothing, the retry commits',
    async (_order, first) => {
      prefix = newPrefix();
      const probe = new Probe(engine);
      const bull = [
        BullModule.forRoot({ redis, prefix }),
        BullModule.registerQueue({ name: QUEUE }),
      ];
      t = await startJobsApp(engine, {
        ...ordered(first, bull),
        providers: [LegacyProcessor, Jobs, { provide: PROBE, useValue: probe }],
      });
      await t.app.get(Jobs).queue.add('write', { text: 'legacy' }, { attempts: 2 });
      // Queue listeners get no unit.
      expect(await within(HANG_MS, 'the job', probe.completed.promise)).toBe(false);
      expect(await t.texts()).toEqual(['legacy#1', 'legacy#1/2']);
      const [failed, retried] = probe.runs;
      expect(failed!.txid).not.toBeNull();
      expect(retried!.txid).not.toBeNull();
      expect(retried!.txid).not.toBe(failed!.txid);
      await t.expectClean();
    },
  );
});
