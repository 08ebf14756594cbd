import type { LoggerService } from '@nestjs/common';
import { Processor, WorkerHost } from '@nestjs/bullmq';
import { getRepositoryToken, InjectRepository } from '@nestjs/typeorm';
import type { Job } from 'bullmq';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import { getSessionToken, InjectSession, SessionContext, Transactional } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { HANG_MS, within } from '../correctness/support-b.js';
import { typeormOptions } from '../support/create-app.js';
import { type Engine, engines, idleInTransaction } from '../support/engines.js';
import {
  type BullApp,
  PROBE,
  QUEUE,
  settled,
  startBull,
  Writer,
  WritesProcessor,
} from './bullmq-app.js';
import { dropPrefix, Example, importOrders, newPrefix, signal } from './jobs-support.js';

/** The rows of `example` and what is left idle in transaction, seen from a connection of its own. */
async function afterwards(engine: Engine): Promise<{ texts: string[]; idle: number }> {
  const side = new DataSource({ ...typeormOptions(engine, 1), synchronize: false });
  await side.initialize();
  try {
    const rows: Array<{ text: string }> = await side.query('SELECT text FROM example');
    return {
      texts: rows.map((row) => row.text).sort(),
      idle: await idleInTransaction(engine, side),
    };
  } finally {
    await side.destroy();
  }
}

/** A processor made by a factory under a token that is not its class (async when `later`). */
const factoryProcessor = (later: boolean) => ({
  provide: 'JOBS_FACTORY_PROCESSOR',
  useFactory: (...deps: ConstructorParameters<typeof WritesProcessor>) => {
    const made = new WritesProcessor(...deps);
    return later ? Promise.resolve(made) : made;
  },
  inject: [getRepositoryToken(Example), getSessionToken(), SessionContext, Writer, PROBE],
});

/** A processor whose `process` is an arrow function in a property: nothing on its class to wrap. */
@Processor(QUEUE)
class ArrowProcessor extends WorkerHost {
  constructor(@InjectRepository(Example) private readonly examples: Repository<Example>) {
    super();
  }

  process = async (job: Job<{ text: string }>) => {
    await this.examples.insert({ text: job.data.text });
    throw new Error('fails after writing');
  };
}

/** A processor whose process() has @Transactional() of its own, with options that shape it. */
@Processor(QUEUE)
class OwnTransactionProcessor extends WorkerHost {
  constructor(@InjectSession() private readonly session: EntityManager) {
    super();
  }

  @Transactional({ readOnly: true })
  async process(job: Job<{ text: string; failOn?: number[] }>) {
    await this.session.insert(Example, { text: job.data.text });
  }
}

/** Keeps what was logged as a warning. */
class WarningsLogger implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

describe.each(engines)('BullMQ jobs across the app lifecycle ($name)', (engine) => {
  const started: Array<{ app: BullApp; prefix: string; closed?: boolean }> = [];

  async function start(
    ...args: Parameters<typeof startBull> extends [unknown, unknown, ...infer R] ? R : never
  ) {
    const prefix = newPrefix();
    const app = await startBull(engine, prefix, ...args);
    started.push({ app, prefix });
    return app;
  }

  afterEach(async () => {
    for (const { app, prefix, closed } of started.splice(0)) {
      if (!closed) await app.t.close();
      await dropPrefix(prefix);
    }
  });

  describe.each(importOrders)('%s', (_order, first) => {
    it('the app closes while a job runs: the job commits whole or not at all, nothing hangs', async () => {
      const { t, probe, queue } = await start(first);
      const running = signal();
      probe.midway = async (_job, session) => {
        running.resolve();
        await session.query(engine.sleepSql(0.3));
      };
      await queue.add('write', { text: 'closing', twice: true });
      await within(HANG_MS, 'the job to start', running.promise);
      started[0]!.closed = true;
      await within(HANG_MS, 'app.close() during a job', t.close());
      const { texts, idle } = await afterwards(engine);
      expect([[], ['closing#0', 'closing#0/2']]).toContainEqual(texts);
      expect(idle).toBe(0);
    });

    it.each([
      ['a factory', false],
      ['an async factory', true],
    ])('a processor made by %s runs its jobs in units', async (_kind, later) => {
      const { t, probe, queue } = await start(first, { processor: factoryProcessor(later) });
      const job = await queue.add('write', { text: 'made', failOn: [0] }, { attempts: 2 });
      expect(await settled(queue, job)).toBe('completed');
      expect(await t.texts()).toEqual(['made#1']);
      expect(probe.runs[0]!.txid).not.toBeNull();
      await t.expectClean();
    });
  });

  it('with a pool of 2 and concurrency 4, jobs wait for a connection and keep their own units', async () => {
    const { t, probe, queue } = await start(false, { poolSize: 2 });
    const jobs = await queue.addBulk(
      Array.from({ length: 8 }, (_, i) => ({
        name: 'write',
        data: { text: `p${i}`, twice: true },
      })),
    );
    for (const job of jobs) expect(await settled(queue, job)).toBe('completed');
    expect(new Set(probe.runs.map((run) => run.txid)).size).toBe(8);
    expect(await t.rows()).toBe(16);
    await t.expectClean();
  });

  it('two apps in the process, one processor class: each runs its own jobs in its own units', async () => {
    const a = await start(true);
    const b = await start(false);
    const off = await start(true, { context: { jobs: false } });
    const jobs = await Promise.all([
      a.queue.add('write', { text: 'a', twice: true }),
      b.queue.add('write', { text: 'b', twice: true }),
      off.queue.add('write', { text: 'off', twice: true }),
    ]);
    expect(await settled(a.queue, jobs[0])).toBe('completed');
    expect(await settled(b.queue, jobs[1])).toBe('completed');
    // No unit for the app with jobs: false (its sessionContext.session() throws), though the
    // other two wrapped the same class.
    expect(await settled(off.queue, jobs[2])).toBe('failed');
    expect((await off.queue.getJob(jobs[2].id!))?.failedReason).toMatch(/No session context/);
    expect(a.probe.runs.map((run) => run.name)).toEqual(['a#0']);
    expect(b.probe.runs.map((run) => run.name)).toEqual(['b#0']);
    expect(a.probe.runs[0]!.txid).not.toBeNull();
    expect(b.probe.runs[0]!.txid).not.toBeNull();
    expect(off.probe.runs).toEqual([{ name: 'off#0', txid: null }]);
    expect(await a.t.texts()).toEqual(['a#0', 'a#0/2', 'b#0', 'b#0/2', 'off#0']);
    // One app closing leaves the other's claims on the shared class in place.
    started[0]!.closed = true;
    await a.t.close();
    const later = await b.queue.add('write', { text: 'later', failOn: [0] });
    expect(await settled(b.queue, later)).toBe('failed');
    expect(b.probe.runs.find((run) => run.name === 'later#0')?.txid).not.toBeNull();
    expect(await b.t.texts()).not.toContain('later#0');
  });

  it('a processor whose process is an arrow function is named at startup (it gets no unit)', async () => {
    const logger = new WarningsLogger();
    const { t, queue } = await start(true, { processor: ArrowProcessor, logger });
    expect(
      logger.warnings.filter((w) => w.includes('ArrowProcessor.process is not a method')),
    ).toHaveLength(1);
    const job = await queue.add('write', { text: 'arrow' });
    expect(await settled(queue, job)).toBe('failed');
    expect(await t.texts()).toEqual(['arrow']);
  });

  it('process() with @Transactional(options) of its own keeps them: its unit begins read-only', async () => {
    const logger = new WarningsLogger();
    const { t, queue } = await start(true, { processor: OwnTransactionProcessor, logger });
    const job = await queue.add('write', { text: 'read-only' });
    expect(await settled(queue, job)).toBe('failed');
    expect((await queue.getJob(job.id!))?.failedReason).toMatch(/read[- ]only/i);
    expect(await t.rows()).toBe(0);
    expect(logger.warnings.filter((w) => w.includes('do not apply'))).toEqual([]);
    await t.expectClean();
  });

  it('the testing kit: a job runs in the test transaction, as a savepoint, undone by rollback()', async () => {
    const { t, probe, queue } = await start(true);
    const tx = await TestTransaction.start(t.app);
    try {
      const done = await queue.add('write', { text: 'kept' });
      const failed = await queue.add('write', { text: 'dropped', failOn: [0] });
      expect(await settled(queue, done)).toBe('completed');
      expect(await settled(queue, failed)).toBe('failed');
      // The test sees what the job committed (its savepoint released), not what the failed one wrote.
      expect(await t.texts()).toEqual(['kept#0']);
      const testTx = (await t.dataSource.query(engine.txidSql)) as Array<{ id: string | null }>;
      if (engine.name === 'postgres') expect(probe.runs[0]!.txid).toBe(testTx[0]!.id);
    } finally {
      await tx.rollback();
    }
    expect(await t.rows()).toBe(0);
    await t.expectClean();
  });
});
