import { Inject, Injectable, type Provider } from '@nestjs/common';
import { BullModule, InjectQueue, OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { InjectRepository } from '@nestjs/typeorm';
import type { Job, Queue } from 'bullmq';
import type { EntityManager, Repository } from 'typeorm';
import {
  InjectSession,
  NoSessionContextError,
  SessionContext,
  Transactional,
} from '../../src/index.js';
import { HANG_MS, within } from '../correctness/support-b.js';
import type { TestApp } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import {
  currentTx,
  Example,
  type JobsAppParts,
  ordered,
  redis,
  type Run,
  startJobsApp,
} from './jobs-support.js';

/** The queue of the suite's processor. */
export const QUEUE = 'jobs-writes';
/** The token of the `Probe`. */
export const PROBE = 'JOBS_PROBE';

/** What the test and the processor share: the engine, what each run saw, hooks to steer a run. */
export class Probe {
  readonly runs: Run[] = [];
  /** Called inside a run after its first write (a barrier, a latch). */
  midway?: (job: Job, session: EntityManager) => Promise<void>;
  /** Events the worker reported, with whether a session context was there. */
  readonly events: Array<{ event: string; context: boolean }> = [];
  constructor(readonly engine: Engine) {}
}

export interface Data {
  text: string;
  /** Throw after writing, on the attempts listed. */
  failOn?: number[];
  /** Write a second row (after `midway`). */
  twice?: boolean;
  /** Write through a @Transactional() method (which must join the job's unit). */
  viaTransactional?: boolean;
}

@Injectable()
export class Writer {
  constructor(
    @InjectSession() private readonly session: EntityManager,
    @Inject(PROBE) private readonly probe: Probe,
  ) {}

  @Transactional()
  async write(text: string): Promise<string | null> {
    await this.session.insert(Example, { text });
    return currentTx(this.probe.engine, this.session);
  }
}

@Processor(QUEUE, { concurrency: 4 })
export class WritesProcessor extends WorkerHost {
  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    @InjectSession() private readonly session: EntityManager,
    private readonly context: SessionContext,
    private readonly writer: Writer,
    @Inject(PROBE) private readonly probe: Probe,
  ) {
    super();
  }

  async process(job: Job<Data>): Promise<string | null> {
    const attempt = job.attemptsMade;
    const name = `${job.data.text}#${attempt}`;
    let inner: string | null = null;
    if (job.data.viaTransactional) inner = await this.writer.write(`${name}/inner`);
    await this.examples.insert({ text: name });
    const tx = await currentTx(this.probe.engine, this.session);
    this.probe.runs.push({ name, txid: tx });
    if (inner !== null) this.probe.runs.push({ name: `${name}/inner`, txid: inner });
    await this.probe.midway?.(job, this.session);
    if (job.data.twice) await this.context.session().insert(Example, { text: `${name}/2` });
    if (job.data.failOn?.includes(attempt)) throw new Error(`attempt ${attempt} fails`);
    return tx;
  }

  @OnWorkerEvent('completed')
  completed() {
    this.probe.events.push({ event: 'completed', context: hasContext(this.context) });
  }
}

export function hasContext(context: SessionContext): boolean {
  try {
    context.session();
    return true;
  } catch (error) {
    if (error instanceof NoSessionContextError) return false;
    throw error;
  }
}

/** Injects the queue, so the test can add jobs through the app. */
@Injectable()
export class Jobs {
  constructor(@InjectQueue(QUEUE) readonly queue: Queue<Data>) {}
}

/** Resolves once `job` completed or failed for good; its final state. */
export async function settled(queue: Queue, job: Job): Promise<string> {
  return within(
    HANG_MS,
    `job ${job.id}`,
    (async () => {
      for (;;) {
        const state = await queue.getJobState(job.id!);
        if (state === 'completed' || state === 'failed') return state;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })(),
  );
}

/** Whether a PostgreSQL `xmin` (32 bits) is the transaction `txid` (64 bits, with its epoch). */
export const wrote = (xmin: string | undefined, txid: string | null) =>
  txid !== null && xmin !== undefined && BigInt(xmin) === BigInt(txid) % 2n ** 32n;

/** A started app with the suite's processor on `prefix`, its probe and its queue. */
export interface BullApp {
  t: TestApp;
  probe: Probe;
  queue: Queue<Data>;
}

/** Starts an app with the processor on `prefix`; BullMQ's modules before the context module if `first`. */
export async function startBull(
  engine: Engine,
  prefix: string,
  first: boolean,
  parts: JobsAppParts & { processor?: Provider } = {},
): Promise<BullApp> {
  const probe = new Probe(engine);
  const bull = [
    BullModule.forRoot({ connection: redis, prefix }),
    BullModule.registerQueue({ name: QUEUE }),
  ];
  const t = await startJobsApp(engine, {
    ...parts,
    ...ordered(first, bull),
    providers: [
      parts.processor ?? WritesProcessor,
      Writer,
      Jobs,
      { provide: PROBE, useValue: probe },
      ...(parts.providers ?? []),
    ],
  });
  return { t, probe, queue: t.app.get(Jobs).queue };
}
