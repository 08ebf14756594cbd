import { Inject, Injectable, Scope } from '@nestjs/common';
import { BullModule, InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import type { Job, Queue } from 'bullmq';
import type { EntityManager } from 'typeorm';
import { InjectSession, SessionContext } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { settled } from './bullmq-app.js';
import {
  currentTx,
  dropPrefix,
  Example,
  newPrefix,
  redis,
  type Run,
  startJobsApp,
} from './jobs-support.js';

const QUEUE = 'jobs-scoped';
const PROBE = 'SCOPED_PROBE';

class Probe {
  readonly runs: Run[] = [];
  constructor(readonly engine: Engine) {}
}

/** Request-scoped: BullMQ makes an instance per job, which no container lookup can place. */
@Processor({ name: QUEUE, scope: Scope.REQUEST })
class ScopedProcessor extends WorkerHost {
  constructor(
    @InjectSession() private readonly session: EntityManager,
    private readonly context: SessionContext,
    @Inject(PROBE) private readonly probe: Probe,
  ) {
    super();
  }

  async process(job: Job<{ text: string }>) {
    const name = `${job.data.text}#${job.attemptsMade}`;
    await this.session.insert(Example, { text: name });
    await this.context.session().insert(Example, { text: `${name}/2` });
    this.probe.runs.push({ name, txid: await currentTx(this.probe.engine, this.session) });
    if (job.attemptsMade === 0) throw new Error('the first attempt fails');
  }
}

@Injectable()
class Jobs {
  constructor(@InjectQueue(QUEUE) readonly queue: Queue) {}
}

describe.each(engines)('request-scoped BullMQ processors ($name)', (engine) => {
  const started: Array<{ t: TestApp; prefix: string }> = [];

  afterEach(async () => {
    for (const { t, prefix } of started.splice(0)) {
      await t.close();
      await dropPrefix(prefix);
    }
  });

  async function start() {
    const prefix = newPrefix();
    const probe = new Probe(engine);
    const t = await startJobsApp(engine, {
      imports: [
        BullModule.forRoot({ connection: redis, prefix }),
        BullModule.registerQueue({ name: QUEUE }),
      ],
      providers: [ScopedProcessor, Jobs, { provide: PROBE, useValue: probe }],
    });
    started.push({ t, prefix });
    return { t, probe, queue: t.app.get(Jobs).queue };
  }

  const add = (queue: Queue, text: string) => queue.add('write', { text }, { attempts: 2 });

  it('each attempt is a unit of work', async () => {
    const { t, probe, queue } = await start();
    const job = await add(queue, 'scoped');
    expect(await settled(queue, job)).toBe('completed');
    expect(await t.texts()).toEqual(['scoped#1', 'scoped#1/2']);
    expect(probe.runs[1]!.txid).not.toBeNull();
    expect(probe.runs[1]!.txid).not.toBe(probe.runs[0]!.txid);
    await t.expectClean();
  });

  it('two apps with the processor: each job still gets a unit of its own app', async () => {
    const a = await start();
    const b = await start();
    const jobs = [await add(a.queue, 'a'), await add(b.queue, 'b')];
    expect(await settled(a.queue, jobs[0]!)).toBe('completed');
    expect(await settled(b.queue, jobs[1]!)).toBe('completed');
    expect(await a.t.texts()).toEqual(['a#1', 'a#1/2', 'b#1', 'b#1/2']);
    await a.t.expectClean();
    await b.t.expectClean();
  });
});
