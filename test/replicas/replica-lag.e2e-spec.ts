import { ReplicaUnavailableError, SessionFactory } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { freePort } from '../support/free-port.js';
import { type Standby, startStandby } from '../support/standby.js';
import {
  captureLogs,
  createReplicaApp,
  pair,
  pauseReplay,
  portOf,
  type ReplicaApp,
  resumeReplay,
} from './replica-app.js';
import { ReplicaItem, where } from './replica-item.js';
import { TokenController } from './token-app.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HEADER = 'x-consistency-token';

/** Makes the standby at `url` lag: replay paused, then a commit it receives but does not apply. */
async function lagging(t: ReplicaApp, url: string, ms: number): Promise<void> {
  await pauseReplay(url);
  await t.dataSource.getRepository(ReplicaItem).insert({ text: 'lag' }); // on the primary
  await sleep(ms);
}

describe('Read replicas: lag-aware routing (maxReplicaLag)', () => {
  const { primary, replica } = pair();
  afterEach(() => resumeReplay(replica));

  describe('one replica', () => {
    let t: ReplicaApp;
    let factory: SessionFactory;
    const logs = captureLogs();
    beforeAll(async () => {
      t = await createReplicaApp({
        context: { maxReplicaLag: 300, consistency: { refresh: 25 } },
        logger: logs,
      });
      factory = t.app.get(SessionFactory);
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('a replica that lags more is skipped (logged once), then taken back once it caught up (logged once)', async () => {
      expect((await factory.atomic(where, { readOnly: true })).replica).toBe(true);
      logs.lines.length = 0;
      await lagging(t, replica, 450);
      for (let i = 0; i < 5; i++) {
        expect(await factory.atomic(where, { readOnly: true })).toEqual({
          replica: false,
          port: portOf(primary),
        });
        await sleep(30); // past consistency.refresh: asked again each time, still lagging
      }
      expect(
        logs.lines.filter((line) =>
          line.includes('more than maxReplicaLag (300 ms): it gets no reads'),
        ),
      ).toHaveLength(1);
      expect(logs.lines.filter((line) => line.includes('Every replica'))).toHaveLength(1);
      await resumeReplay(replica);
      await eventually(async () => (await factory.atomic(where, { readOnly: true })).replica);
      expect(logs.lines.filter((line) => line.includes('caught up'))).toHaveLength(1);
      expect(logs.lines.filter((line) => line.startsWith('warn'))).toHaveLength(2);
    });

    it('an idle primary is no lag: a replica that replayed all it received keeps its reads', async () => {
      await sleep(500); // nothing committed: the last replayed commit grows old
      expect((await factory.atomic(where, { readOnly: true })).replica).toBe(true);
    });
  });

  it("replicaDown: 'fail' with every replica lagging: ReplicaUnavailableError", async () => {
    const t = await createReplicaApp({ context: { maxReplicaLag: 200, replicaDown: 'fail' } });
    try {
      await lagging(t, replica, 350);
      const read = t.app.get(SessionFactory).atomic(where, { readOnly: true });
      await expect(read).rejects.toThrow(ReplicaUnavailableError);
      await expect(read).rejects.toThrow(/more than maxReplicaLag \(200 ms\)/);
      await resumeReplay(replica);
      await t.expectClean();
    } finally {
      await t.close();
    }
  });

  describe('two replicas', () => {
    let second: Standby;
    let t: ReplicaApp;
    let factory: SessionFactory;
    beforeAll(async () => {
      second = await startStandby(primary, await freePort());
      t = await createReplicaApp({
        slaves: [replica, second.url],
        context: { maxReplicaLag: 300 },
      });
      factory = t.app.get(SessionFactory);
    }, 30_000);

    afterEach(async () => {
      await resumeReplay(replica);
      await resumeReplay(second.url);
      await t.expectClean();
    });
    afterAll(async () => {
      await t?.close();
      await second?.stop();
    });

    const ports = async (reads: number) => {
      const seen = await Promise.all(
        Array.from({ length: reads }, () => factory.atomic(where, { readOnly: true })),
      );
      return new Set(seen.map((at) => at.port));
    };

    it('reads spread over both; one lagging gets none, the other all of them', async () => {
      expect(await ports(10)).toEqual(new Set([portOf(replica), second.port]));
      await lagging(t, replica, 450);
      // Each replica is asked once the old answer is stale; after that the lagging one is skipped.
      await sleep(30);
      expect(await ports(10)).toEqual(new Set([second.port]));
      await resumeReplay(replica);
      await eventually(async () => (await ports(10)).size === 2);
    });

    it('with a token, only a replica that replayed it; the read waits for one to', async () => {
      // No maxReplicaLag here: a paused replica would count as lagging, and get no reads anyway.
      const tokens = await createReplicaApp({
        slaves: [replica, second.url],
        context: { consistency: { header: HEADER, wait: 2000 } },
        controllers: [TokenController],
      });
      try {
        await readsWithTokens(tokens);
        await tokens.expectClean();
      } finally {
        await tokens.close();
      }
    });

    const readsWithTokens = async (t: ReplicaApp) => {
      await pauseReplay(replica);
      const write = await t.http().post('/tok/write/two').expect(201);
      const token = write.headers[HEADER] as string;
      const reads = await Promise.all(
        Array.from({ length: 10 }, () =>
          t.http().get('/tok/read/two').set(HEADER, token).expect(200),
        ),
      );
      for (const read of reads)
        expect(read.body).toEqual({ replica: true, port: second.port, seen: 1 });
      // Both paused: each read waits (consistency.wait) until one replays it.
      await pauseReplay(second.url);
      const next = (await t.http().post('/tok/write/two').expect(201)).headers[HEADER] as string;
      setTimeout(() => void resumeReplay(second.url), 200);
      const waited = await t.http().get('/tok/read/two').set(HEADER, next).expect(200);
      expect(waited.body).toEqual({ replica: true, port: second.port, seen: 2 });
    };
  });
});
