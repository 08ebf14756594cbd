/**
 * Round three: the primary is asked whether it can tell WAL positions at its first transaction,
 * on that transaction's connection (`ReplicaPools.askPositions()`). What the primary is asked is
 * read on the wire (a proxy that records every query message), what was written on the primary.
 */
import { Controller, Injectable, Param, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { COMMIT_WITH_POSITION, parseLsn, POSITION_PROBE } from '../../src/session/wal-position.js';
import { captureLogs, pair, portOf, runOn } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { TcpProxy } from '../replicas/tcp-proxy.js';
import {
  createReviewApp,
  HEADER,
  onPrimary,
  primaryLsn,
  type ReviewApp,
} from '../replica-review2/review-app.js';
import { WireProxy, withPort } from '../replica-review2/wire-proxy.js';

@Injectable()
class NewService {
  constructor(private readonly context: SessionContext) {}

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async write(text: string): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
  }
}

@Controller('f')
class FirstController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly service: NewService,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  /** The request's own unit takes nothing: its only transaction is a REQUIRES_NEW one. */
  @Post('new/:text')
  async viaNew(@Param('text') text: string): Promise<object> {
    await this.service.write(text);
    return {};
  }

  /** A transaction of the primary that reads (not readOnly: it runs on the primary). */
  @Post('select')
  select(): Promise<unknown> {
    return this.factory.atomic((manager) =>
      manager.query('SELECT pg_is_in_recovery() AS replica, inet_server_port() AS port'),
    );
  }
}

const probes = (proxy: WireProxy) => proxy.statements.filter((sql) => sql === POSITION_PROBE);

async function checkToken(token: unknown): Promise<void> {
  expect(token).toEqual(expect.stringMatching(/^default=[0-9A-F]+\/[0-9A-F]+$/));
  const position = parseLsn(String(token).split('=')[1])!;
  expect(position).toBeLessThanOrEqual(parseLsn(await primaryLsn())!);
}

describe('Replica review 3: the first transaction asks the primary', () => {
  let t: ReviewApp | undefined;
  const proxies: Array<{ stop?: () => Promise<void>; down?: () => Promise<void> }> = [];
  afterEach(async () => {
    await t?.close();
    t = undefined;
    for (const proxy of proxies.splice(0)) await (proxy.stop ?? proxy.down)!.call(proxy);
  });

  it('many first transactions at once: one question on the wire, and every one of them gets its token', async () => {
    const primary = await WireProxy.start(portOf(pair().primary));
    proxies.push(primary);
    t = await createReviewApp({
      primary: withPort(pair().primary, primary.port),
      context: { consistency: { header: HEADER } },
      controllers: [FirstController],
      providers: [NewService],
    });
    primary.clear();
    const texts = Array.from({ length: 8 }, (_, i) => `many-${i}`);
    const answers = await Promise.all(
      texts.map((text) => t!.http().post(`/f/write/${text}`).expect(201)),
    );
    for (const text of texts) expect(await onPrimary(text)).toBe(1);
    for (const answer of answers) await checkToken(answer.headers[HEADER]);
    expect(probes(primary)).toHaveLength(1);
    expect(primary.statements.filter((sql) => sql === COMMIT_WITH_POSITION)).toHaveLength(8);
  });

  it('a REQUIRES_NEW block as the first transaction, inside a request, gets the request its token', async () => {
    const primary = await WireProxy.start(portOf(pair().primary));
    proxies.push(primary);
    t = await createReviewApp({
      primary: withPort(pair().primary, primary.port),
      context: { consistency: { header: HEADER } },
      controllers: [FirstController],
      providers: [NewService],
    });
    primary.clear();
    const answer = await t.http().post('/f/new/new-1').expect(201);
    expect(await onPrimary('new-1')).toBe(1);
    await checkToken(answer.headers[HEADER]);
    expect(probes(primary)).toHaveLength(1);
  });

  it('the testing kit as the first thing that runs: no question on the test connection, the test works, the app asks after', async () => {
    const primary = await WireProxy.start(portOf(pair().primary));
    proxies.push(primary);
    t = await createReviewApp({
      primary: withPort(pair().primary, primary.port),
      context: { consistency: { header: HEADER } },
      controllers: [FirstController],
      providers: [NewService],
    });
    primary.clear();
    const tx = await TestTransaction.start(t.app);
    try {
      const inside = await t.http().post('/f/write/kit-1').expect(201);
      expect(inside.headers[HEADER]).toBeUndefined();
      await t.http().post('/f/new/kit-2').expect(201);
      expect(probes(primary)).toEqual([]);
    } finally {
      await tx.rollback();
    }
    expect(await onPrimary('kit-1')).toBe(0);
    expect(await onPrimary('kit-2')).toBe(0);
    const after = await t.http().post('/f/write/kit-3').expect(201);
    expect(await onPrimary('kit-3')).toBe(1);
    await checkToken(after.headers[HEADER]);
    expect(probes(primary)).toHaveLength(1);
  });

  it('idle connections reset before the first transaction: it still asks once and gets its token, no warning', async () => {
    const proxy = await TcpProxy.start(portOf(pair().primary));
    proxies.push(proxy);
    const logs = captureLogs();
    t = await createReviewApp({
      primary: withPort(pair().primary, proxy.port),
      context: { consistency: { header: HEADER } },
      controllers: [FirstController],
      providers: [NewService],
      logger: logs,
    });
    // The pool's idle connections are reset before the first transaction takes one.
    await proxy.down();
    await proxy.up();
    const first = await t.http().post('/f/write/broken-1').expect(201);
    expect(await onPrimary('broken-1')).toBe(1);
    await checkToken(first.headers[HEADER]);
    const answer = await t.http().post('/f/write/broken-2').expect(201);
    expect(await onPrimary('broken-2')).toBe(1);
    await checkToken(answer.headers[HEADER]);
    expect(logs.lines.filter((line) => /WAL|token/i.test(line))).toEqual([]);
  });

  it('a role denied the WAL functions: one warning for many first transactions, plain COMMITs, no tokens', async () => {
    const { primary: primaryUrl } = pair();
    const role = 'review22c_nowal';
    await runOn(
      primaryUrl,
      `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN; END IF; END $$`,
    );
    await runOn(primaryUrl, `ALTER ROLE ${role} PASSWORD 'review22c'`);
    await runOn(primaryUrl, `GRANT ALL ON replica_item TO ${role}`);
    await runOn(primaryUrl, `GRANT ALL ON SEQUENCE replica_item_id_seq TO ${role}`);
    await runOn(primaryUrl, 'REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC');
    try {
      const wire = await WireProxy.start(portOf(primaryUrl));
      proxies.push(wire);
      const logs = captureLogs();
      const url = new URL(withPort(primaryUrl, wire.port));
      url.username = role;
      url.password = 'review22c';
      t = await createReviewApp({
        primary: url.toString(),
        context: { consistency: { header: HEADER } },
        controllers: [FirstController],
        providers: [NewService],
        logger: logs,
        extra: { synchronize: false },
      });
      wire.clear();
      const texts = Array.from({ length: 6 }, (_, i) => `denied-${i}`);
      const answers = await Promise.all(
        texts.map((text) => t!.http().post(`/f/write/${text}`).expect(201)),
      );
      await t.http().post('/f/write/denied-late').expect(201);
      for (const text of [...texts, 'denied-late']) expect(await onPrimary(text)).toBe(1);
      for (const answer of answers) expect(answer.headers[HEADER]).toBeUndefined();
      expect(probes(wire)).toHaveLength(1);
      expect(wire.statements.filter((sql) => sql === COMMIT_WITH_POSITION)).toEqual([]);
      expect(wire.statements.filter((sql) => sql === 'COMMIT')).toHaveLength(7);
      expect(logs.lines.filter((line) => line.startsWith('warn') && /WAL/.test(line))).toHaveLength(
        1,
      );
    } finally {
      await runOn(primaryUrl, 'GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn() TO PUBLIC');
    }
  });

  it('a primary that can never tell positions for a reason other than a refusal (a hot standby as master) is asked once, not at every transaction', async () => {
    // A reporting app pointed at a standby: pg_current_wal_insert_lsn() fails with 55000
    // ("recovery is in progress"), neither a refusal (42, 0A) nor a broken connection.
    const standby = await WireProxy.start(portOf(pair().replica));
    proxies.push(standby);
    const logs = captureLogs();
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          replication: {
            master: { url: withPort(pair().replica, standby.port) },
            slaves: [{ url: pair().replica }],
          },
          entities: [ReplicaItem],
          synchronize: false,
          logging: false,
        }),
        TypeOrmContextModule.forRoot({ consistency: { header: HEADER } }),
      ],
      controllers: [FirstController],
      providers: [NewService],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: logs });
    await app.init();
    proxies.push({ stop: () => app.close() });
    standby.clear();
    for (let i = 0; i < 4; i++) {
      const answer = await request(app.getHttpServer()).post('/f/select').expect(201);
      expect(answer.body).toEqual([{ replica: true, port: portOf(pair().replica) }]);
    }
    // What the server was asked: the question, how many times.
    expect(probes(standby)).toHaveLength(1);
  });
});
