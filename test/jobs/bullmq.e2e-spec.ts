import { HANG_MS, within } from '../correctness/support-b.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { type Probe, settled, startBull, wrote } from './bullmq-app.js';
import { dropPrefix, importOrders, newPrefix, signal, writers } from './jobs-support.js';

describe.each(engines)('BullMQ processors run each job in a unit of work ($name)', (engine) => {
  let t: TestApp | undefined;
  let prefix: string;
  let probe: Probe;

  async function start(first: boolean, context = {}) {
    prefix = newPrefix();
    const started = await startBull(engine, prefix, first, { context });
    ({ t, probe } = started);
    return started.queue;
  }

  afterEach(async () => {
    await t?.close();
    t = undefined;
    await dropPrefix(prefix);
  });

  describe.each(importOrders)('%s', (_order, first) => {
    it('a job that throws leaves no row; its retry commits once, in another transaction', async () => {
      const queue = await start(first);
      const job = await queue.add('write', { text: 'retried', failOn: [0] }, { attempts: 2 });
      expect(await settled(queue, job)).toBe('completed');
      expect(await t!.texts()).toEqual(['retried#1']);
      const [failed, retried] = probe.runs;
      expect(failed).toMatchObject({ name: 'retried#0', txid: expect.any(String) });
      expect(retried).toMatchObject({ name: 'retried#1', txid: expect.any(String) });
      expect(retried!.txid).not.toBe(failed!.txid);
      // The job's value reaches BullMQ through the unit.
      expect((await queue.getJob(job.id!))?.returnvalue).toBe(retried!.txid);
      const xmins = await writers(engine, t!.dataSource);
      if (xmins) expect(wrote(xmins.get('retried#1'), retried!.txid)).toBe(true);
      await t!.expectClean();
    });
  });

  it('a job whose commit fails is failed in BullMQ, rolled back, and its retry commits', async () => {
    let failCommits = 1;
    const queue = await start(true, {
      beforeCommit: () => {
        if (failCommits-- > 0) throw new Error('the commit is refused');
      },
    });
    const job = await queue.add('write', { text: 'commit' }, { attempts: 2 });
    expect(await settled(queue, job)).toBe('completed');
    expect(probe.runs.map((run) => run.name)).toEqual(['commit#0', 'commit#1']);
    expect(await t!.texts()).toEqual(['commit#1']);
    await t!.expectClean();
  });

  it('a job that fails on every attempt leaves nothing, and BullMQ records it failed', async () => {
    const queue = await start(true);
    const job = await queue.add('write', { text: 'doomed', failOn: [0, 1] }, { attempts: 2 });
    expect(await settled(queue, job)).toBe('failed');
    expect((await queue.getJob(job.id!))?.failedReason).toBe('attempt 1 fails');
    expect(probe.runs.map((run) => run.name)).toEqual(['doomed#0', 'doomed#1']);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
  });

  it('20 jobs at concurrency 4: each job in one transaction of its own, none shared', async () => {
    const queue = await start(false);
    // The first four wait inside their transactions until all four are open at once.
    let inside = 0;
    const together = signal();
    probe.midway = async () => {
      if (++inside === 4) together.resolve();
      if (inside <= 4) await within(HANG_MS, 'four jobs at once', together.promise);
    };
    const jobs = await queue.addBulk(
      Array.from({ length: 20 }, (_, i) => ({
        name: 'write',
        data: { text: `j${i}`, twice: true },
      })),
    );
    for (const job of jobs) expect(await settled(queue, job)).toBe('completed');
    expect(probe.runs).toHaveLength(20);
    const txids = probe.runs.map((run) => run.txid);
    expect(txids.every((id) => id !== null)).toBe(true);
    expect(new Set(txids).size).toBe(20);
    expect(await t!.rows()).toBe(40);
    const xmins = await writers(engine, t!.dataSource);
    if (xmins) {
      for (const run of probe.runs) {
        expect(wrote(xmins.get(run.name), run.txid)).toBe(true);
        expect(wrote(xmins.get(`${run.name}/2`), run.txid)).toBe(true);
      }
    }
    await t!.expectClean();
  });

  it('@Transactional() inside a job joins its unit: one transaction, rolled back with the job', async () => {
    const queue = await start(true);
    const job = await queue.add('write', {
      text: 'joined',
      viaTransactional: true,
      failOn: [0],
    });
    expect(await settled(queue, job)).toBe('failed');
    const outer = probe.runs.find((run) => run.name === 'joined#0')!;
    const inner = probe.runs.find((run) => run.name === 'joined#0/inner')!;
    expect(outer.txid).not.toBeNull();
    expect(inner.txid).toBe(outer.txid);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
  });

  it('worker events get no unit of work', async () => {
    const queue = await start(true);
    const job = await queue.add('write', { text: 'evented' });
    expect(await settled(queue, job)).toBe('completed');
    await within(
      HANG_MS,
      'the completed event',
      waitFor(() => probe.events.length === 1),
    );
    expect(probe.events).toEqual([{ event: 'completed', context: false }]);
  });

  it('jobs: false leaves processors as they are: a failing job keeps what it wrote', async () => {
    const queue = await start(true, { jobs: false });
    const job = await queue.add('write', { text: 'untouched', failOn: [0] });
    expect(await settled(queue, job)).toBe('failed');
    // No unit: the repository wrote on its own (autocommit), and the run saw no transaction.
    expect(await t!.texts()).toEqual(['untouched#0']);
    expect(probe.runs).toEqual([{ name: 'untouched#0', txid: null }]);
  });
});

async function waitFor(probe: () => boolean): Promise<void> {
  while (!probe()) await new Promise((resolve) => setTimeout(resolve, 10));
}
