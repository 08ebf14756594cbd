import { Controller, Get, Param, Post, type LoggerService } from '@nestjs/common';
import { ReplicaUnavailableError, SessionContext, SessionFactory } from '../../src/index.js';
import { freePort } from '../support/free-port.js';
import { type Standby, startStandby } from '../support/standby.js';
import { pair, pauseReplay, portOf, resumeReplay } from '../replicas/replica-app.js';
import { ReplicaItem, where } from '../replicas/replica-item.js';
import { TcpProxy } from '../replicas/tcp-proxy.js';
import { createR22App, type R22App, rowsOn } from './r22-app.js';

const HEADER = 'x-ct';

@Controller('rt')
class RoutingController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  @Get('read/:text')
  async read(@Param('text') text: string) {
    try {
      return await this.factory.atomic(
        async (manager) => ({
          ...(await where(manager)),
          seen: await manager.countBy(ReplicaItem, { text }),
        }),
        { readOnly: true },
      );
    } catch (error) {
      return { error: (error as Error).constructor.name };
    }
  }

  /** Holds a read-only transaction (a replica connection) for `ms`. */
  @Get('hold/:ms')
  hold(@Param('ms') ms: string) {
    return this.factory.atomic(
      async (manager) => {
        const at = await where(manager);
        await manager.query('SELECT pg_sleep($1::float / 1000)', [Number(ms)]);
        return at;
      },
      { readOnly: true },
    );
  }
}

class Lines implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown) {
    this.lines.push(String(message));
  }
  warn(message: unknown) {
    this.lines.push(String(message));
  }
  error(message: unknown) {
    this.lines.push(String(message));
  }
  debug() {}
  verbose() {}
  count(pattern: RegExp) {
    return this.lines.filter((line) => pattern.test(line)).length;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Replica review: routing with tokens, lag and several replicas', () => {
  let second: Standby;
  const first = () => pair().replica;

  beforeAll(async () => {
    second = await startStandby(pair().primary, await freePort());
  }, 60_000);
  afterAll(async () => {
    await resumeReplay(first()).catch(() => undefined);
    await resumeReplay(second.url).catch(() => undefined);
    await second.stop();
  });

  describe('two replicas, one paused, maxReplicaLag', () => {
    let r: R22App;
    const lines = new Lines();
    beforeAll(async () => {
      r = await createR22App({
        slaves: [first(), second.url],
        logger: lines,
        context: {
          maxReplicaLag: 300,
          consistency: { header: HEADER, wait: 1000, refresh: 10 },
        },
        controllers: [RoutingController],
      });
      await r.replayed(second.url);
    });
    afterAll(async () => {
      await resumeReplay(first());
      await resumeReplay(second.url);
      await r.close();
    });
    afterEach(async () => {
      await resumeReplay(first());
      await resumeReplay(second.url);
      await r.replayed(first());
      await r.replayed(second.url);
      await r.expectClean();
    });

    it('token reads never read stale, and land on the replica that replayed', async () => {
      await pauseReplay(first());
      const written = await r.http().post('/rt/write/two-paused').expect(201);
      const token = written.headers[HEADER] as string;
      const reads = [];
      for (let i = 0; i < 12; i++) {
        reads.push((await r.http().get('/rt/read/two-paused').set(HEADER, token)).body);
      }
      expect(reads.filter((read) => read.seen !== 1)).toEqual([]);
      // The second replica replays it at once: the reads run there, not on the primary.
      expect(reads.filter((read) => read.port === portOf(second.url))).toHaveLength(12);
      expect(await rowsOn(first(), 'two-paused')).toBe(0);
    });

    it('a paused replica gets no reads once it lags past maxReplicaLag; logged once each way', async () => {
      // Settle what the replicas said in the test before (a paused one may be marked lagging).
      for (let i = 0; i < 6; i++) {
        await r.http().get('/rt/read/settle');
        await sleep(15);
      }
      const before = lines.count(/replica 1 .* replays \d+ ms behind/);
      const caughtBefore = lines.count(/replica 1 .* caught up/);
      await pauseReplay(first());
      // Writes keep coming: the paused standby receives WAL it does not replay.
      const ports: number[] = [];
      const deadline = Date.now() + 1500;
      while (Date.now() < deadline) {
        await r.http().post('/rt/write/lag-writes').expect(201);
        ports.push((await r.http().get('/rt/read/lag-writes')).body.port as number);
        await sleep(20);
      }
      // After maxReplicaLag (300 ms) plus a refresh, no read goes to the paused one.
      const tail = ports.slice(Math.floor(ports.length / 2));
      expect(tail.filter((port) => port === portOf(first()))).toEqual([]);
      expect(lines.count(/replica 1 .* replays \d+ ms behind/) - before).toBe(1);
      await resumeReplay(first());
      await r.replayed(first());
      for (let i = 0; i < 6; i++) await r.http().get('/rt/read/lag-writes');
      expect(lines.count(/replica 1 .* caught up/) - caughtBefore).toBe(1);
    });

    it('forty concurrent token reads while both replicas are paused: none stale, nothing held', async () => {
      await pauseReplay(first());
      await pauseReplay(second.url);
      const written = await r.http().post('/rt/write/crowd').expect(201);
      const token = written.headers[HEADER] as string;
      const reads = Array.from({ length: 40 }, () =>
        r.http().get('/rt/read/crowd').set(HEADER, token),
      );
      await sleep(200);
      await resumeReplay(second.url);
      const bodies = (await Promise.all(reads)).map((res) => res.body);
      expect(bodies.filter((body) => body.seen !== 1)).toEqual([]);
      expect(bodies.filter((body) => body.port === portOf(first()))).toEqual([]);
    });
  });

  describe('a replica that goes down while token reads wait for it', () => {
    let r: R22App;
    let proxy: TcpProxy;
    beforeAll(async () => {
      proxy = await TcpProxy.start(portOf(first()));
      const url = new URL(first());
      url.port = String(proxy.port);
      r = await createR22App({
        slaves: [url.toString()],
        context: { consistency: { header: HEADER, wait: 3000, refresh: 10 } },
        controllers: [RoutingController],
      });
    });
    afterAll(async () => {
      await resumeReplay(first());
      await r.close();
      await proxy.down();
    });

    it('the waiting reads end on the primary, seeing the row, promptly', async () => {
      await pauseReplay(first());
      const written = await r.http().post('/rt/write/down-wait').expect(201);
      const token = written.headers[HEADER] as string;
      const started = Date.now();
      const reads = Array.from({ length: 8 }, () =>
        r.http().get('/rt/read/down-wait').set(HEADER, token),
      );
      await sleep(150);
      await proxy.down();
      const bodies = (await Promise.all(reads)).map((res) => res.body);
      expect(bodies.filter((body) => body.seen !== 1)).toEqual([]);
      expect(bodies.every((body) => body.port === portOf(pair().primary))).toBe(true);
      // Not held until consistency.wait (3 s) ran out: the replica is gone.
      expect(Date.now() - started).toBeLessThan(2500);
      await proxy.up();
      await resumeReplay(first());
      await r.replayed(first());
      await r.expectClean();
    });
  });

  describe("replicaDown: 'fail' with every replica lagging", () => {
    let r: R22App;
    beforeAll(async () => {
      r = await createR22App({
        context: { maxReplicaLag: 100, replicaDown: 'fail', consistency: { refresh: 10 } },
        controllers: [RoutingController],
      });
    });
    afterAll(async () => {
      await resumeReplay(first());
      await r.close();
    });

    it('reads fail with ReplicaUnavailableError instead of reading stale', async () => {
      await pauseReplay(first());
      let last: Record<string, unknown> = {};
      const deadline = Date.now() + 1500;
      while (Date.now() < deadline) {
        await r.http().post('/rt/write/fail-lag').expect(201);
        last = (await r.http().get('/rt/read/fail-lag')).body;
        await sleep(20);
      }
      expect(last).toEqual({ error: ReplicaUnavailableError.name });
      await resumeReplay(first());
      await r.replayed(first());
      await r.expectClean();
    });
  });

  describe('a primary listed as a replica', () => {
    let r: R22App;
    beforeAll(async () => {
      r = await createR22App({
        slaves: [pair().primary],
        context: { maxReplicaLag: 100, consistency: { header: HEADER, refresh: 10 } },
        controllers: [RoutingController],
      });
    });
    afterAll(() => r.close());

    it('token and lag checks accept it (it has everything)', async () => {
      const written = await r.http().post('/rt/write/primary-slave').expect(201);
      const read = await r
        .http()
        .get('/rt/read/primary-slave')
        .set(HEADER, written.headers[HEADER] as string);
      expect(read.body).toMatchObject({ replica: false, seen: 1 });
      await r.expectClean();
    });
  });

  describe('two replicas, the first one busy (pool of one)', () => {
    let r: R22App;
    beforeAll(async () => {
      r = await createR22App({
        slaves: [first(), second.url],
        poolSize: 1,
        context: { acquireTimeout: 1000, consistency: { refresh: 10 } },
        controllers: [RoutingController],
      });
    });
    afterAll(() => r.close());

    it('reads go to the replica with room rather than failing on the full one', async () => {
      // Two long reads: one holds each replica's only connection... then one is released.
      const holdFirst = r.http().get('/rt/hold/2500');
      await sleep(200);
      const results = [];
      for (let i = 0; i < 4; i++) {
        const res = await r.http().get('/rt/read/busy');
        results.push(res.body);
      }
      await holdFirst;
      expect(results.filter((body) => body.error !== undefined)).toEqual([]);
      await r.expectClean();
    });
  });
});
