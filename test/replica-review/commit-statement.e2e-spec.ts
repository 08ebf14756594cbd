import { Controller, Get, Param, Post } from '@nestjs/common';
import {
  type EntitySubscriberInterface,
  EventSubscriber,
  type AfterQueryEvent,
  type BeforeQueryEvent,
} from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { pair, pauseReplay, resumeReplay, runOn } from '../replicas/replica-app.js';
import { ReplicaItem, where } from '../replicas/replica-item.js';
import { createR22App, type R22App, rowsOn } from './r22-app.js';

const HEADER = 'x-ct';

/** What the query subscriber saw, and whether it queries inside the COMMIT's afterQuery. */
const seen: { before: string[]; after: string[]; queryInAfterCommit: boolean; inner: unknown[] } = {
  before: [],
  after: [],
  queryInAfterCommit: false,
  inner: [],
};

@EventSubscriber()
class QuerySpy implements EntitySubscriberInterface {
  beforeQuery(event: BeforeQueryEvent<unknown>): void {
    seen.before.push(event.query);
  }

  async afterQuery(event: AfterQueryEvent<unknown>): Promise<void> {
    seen.after.push(event.query);
    if (seen.queryInAfterCommit && /COMMIT/.test(event.query)) {
      seen.queryInAfterCommit = false;
      seen.inner.push(
        await event.queryRunner.query(
          'SELECT pg_is_in_recovery() AS replica, txid_current_if_assigned() AS xid',
        ),
      );
    }
  }
}

@Controller('cs')
class CommitController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    return { pid: await this.pid() };
  }

  @Get('read/:text')
  read(@Param('text') text: string) {
    return this.factory.atomic(
      async (manager) => ({
        ...(await where(manager)),
        seen: await manager.countBy(ReplicaItem, { text }),
      }),
      { readOnly: true },
    );
  }

  private async pid(): Promise<number> {
    const rows: Array<{ pid: number }> = await this.context
      .session()
      .query('SELECT pg_backend_pid() AS pid');
    return rows[0]!.pid;
  }
}

/** The last statement the server ran on backend `pid` (pg_stat_activity), once it is idle. */
async function lastStatement(pid: number): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const rows = await runOn(
      pair().primary,
      `SELECT state, query FROM pg_stat_activity WHERE pid = ${pid}`,
    );
    if (rows[0]?.state === 'idle') return rows[0].query as string;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`backend ${pid} never idle`);
}

describe('Replica review: the COMMIT statement', () => {
  describe('without replicas', () => {
    let r: R22App;
    beforeAll(async () => {
      r = await createR22App({
        slaves: false,
        context: { consistency: { header: HEADER, cookie: 'ct' } },
        controllers: [CommitController],
      });
    });
    afterAll(() => r.close());

    it('the server receives a plain COMMIT and no token is sent', async () => {
      const res = await r.http().post('/cs/write/plain-commit').expect(201);
      expect(await lastStatement(res.body.pid as number)).toBe('COMMIT');
      expect(res.headers[HEADER]).toBeUndefined();
      expect(res.headers['set-cookie']).toBeUndefined();
    });
  });

  describe('with a replica and TypeORM query subscribers', () => {
    let r: R22App;
    beforeAll(async () => {
      r = await createR22App({
        context: { consistency: { header: HEADER } },
        controllers: [CommitController],
        subscribers: [QuerySpy],
      });
    });
    afterAll(async () => {
      await resumeReplay();
      await r.close();
    });
    afterEach(async () => {
      await resumeReplay();
      await r.replayed();
      await r.expectClean();
    });

    it('the server runs the three statements, subscribers see them once, the token moves', async () => {
      seen.before.length = 0;
      seen.after.length = 0;
      const res = await r.http().post('/cs/write/spied').expect(201);
      expect(await lastStatement(res.body.pid as number)).toMatch(
        /txid_current_if_assigned.*COMMIT.*pg_current_wal_insert_lsn/,
      );
      expect(seen.before.filter((sql) => /COMMIT/.test(sql))).toHaveLength(1);
      expect(seen.after.filter((sql) => /COMMIT/.test(sql))).toHaveLength(1);
      expect(res.headers[HEADER]).toMatch(/^default=[0-9A-F]+\/[0-9A-F]+$/);
    });

    it("a subscriber that queries in the COMMIT's afterQuery: no hang, the token still moves", async () => {
      seen.queryInAfterCommit = true;
      seen.inner.length = 0;
      await pauseReplay();
      const res = await r.http().post('/cs/write/after-query').expect(201);
      expect(seen.inner).toHaveLength(1);
      const token = res.headers[HEADER] as string;
      expect(token).toBeDefined();
      const read = await r.http().get('/cs/read/after-query').set(HEADER, token).expect(200);
      expect(read.body).toMatchObject({ replica: false, seen: 1 });
      expect(await rowsOn(pair().replica, 'after-query')).toBe(0);
    });

    it('TestTransaction: nothing commits, no token is sent, the carried token changes nothing', async () => {
      const tx = await TestTransaction.start(r.app);
      try {
        const res = await r.http().post('/cs/write/in-test').expect(201);
        expect(res.headers[HEADER]).toBeUndefined();
        const read = await r
          .http()
          .get('/cs/read/in-test')
          .set(HEADER, 'default=FFFFFFFF/FFFFFFFF')
          .expect(200);
        expect(read.body).toMatchObject({ replica: false, seen: 1 });
      } finally {
        await tx.rollback();
      }
      expect(await rowsOn(pair().primary, 'in-test')).toBe(0);
    });
  });
});
