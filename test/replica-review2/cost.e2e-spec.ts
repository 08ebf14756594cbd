/**
 * Round two: what reaches the servers, recorded by a proxy that reads the wire protocol (every
 * query message the server gets). Without replicas nothing of the token machinery may be sent;
 * with replicas, a read-only transaction without a token (and without maxReplicaLag) sends no
 * status query; with one, at most one per `consistency.refresh`.
 */
import { Controller, Get, Param, Post, Headers } from '@nestjs/common';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { pair, portOf } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { createReviewApp, HEADER, type ReviewApp, seen } from './review-app.js';
import { WireProxy, withPort } from './wire-proxy.js';

@Controller('c')
class CostController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Get('read/:text')
  read(@Param('text') text: string) {
    return this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
  }

  @Get('read-primary/:text')
  readPrimary(@Param('text') text: string) {
    return this.factory.atomic((manager) => seen(manager, text), {
      readOnly: true,
      replica: false,
    });
  }

  @Post('write/:text')
  async write(@Param('text') text: string, @Headers() _headers: unknown): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }
}

const TOKEN_SQL =
  /pg_current_wal_insert_lsn|txid_current_if_assigned|pg_walfile_name_offset|pg_last_wal_replay_lsn|pg_last_wal_receive_lsn/;
const SEEN_SQL = /^SELECT pg_is_in_recovery\(\) AS replica/;

describe('Replica review 2: what reaches the servers', () => {
  let t: ReviewApp | undefined;
  const proxies: WireProxy[] = [];
  afterEach(async () => {
    await t?.close();
    t = undefined;
    for (const proxy of proxies.splice(0)) await proxy.stop();
  });

  it('an app without replicas sends nothing of the token machinery, from startup on, and commits with a plain COMMIT', async () => {
    const primary = await WireProxy.start(portOf(pair().primary));
    proxies.push(primary);
    t = await createReviewApp({
      noReplicas: true,
      primary: withPort(pair().primary, primary.port),
      context: { consistency: { header: HEADER }, maxReplicaLag: 1000 },
      controllers: [CostController],
    });
    const startup = [...primary.statements];
    primary.clear();
    await t.http().post('/c/write/plain').expect(201);
    await t.http().get('/c/read/plain').expect(200);
    await t.http().get('/c/read-primary/plain').expect(200);
    expect([...startup, ...primary.statements].filter((sql) => TOKEN_SQL.test(sql))).toEqual([]);
    // Each request's transaction: BEGIN, its statements, a plain COMMIT.
    const commits = primary.statements.filter((sql) => /COMMIT/i.test(sql) && !/^START/i.test(sql));
    expect(commits).toEqual(['COMMIT', 'COMMIT', 'COMMIT']);
    await t.expectClean();
  });

  it('with replicas, a read-only transaction without a token sends no status query and nothing to the primary', async () => {
    const primary = await WireProxy.start(portOf(pair().primary));
    const replica = await WireProxy.start(portOf(pair().replica));
    proxies.push(primary, replica);
    t = await createReviewApp({
      primary: withPort(pair().primary, primary.port),
      slaves: [withPort(pair().replica, replica.port)],
      context: { consistency: { header: HEADER } },
      controllers: [CostController],
    });
    primary.clear();
    replica.clear();
    const read = await t.http().get('/c/read/cost').expect(200);
    expect(read.body).toEqual({ replica: true, port: portOf(pair().replica), seen: 0 });
    expect(replica.statements.map((sql) => (SEEN_SQL.test(sql) ? 'SEEN' : sql))).toEqual([
      'START TRANSACTION READ ONLY',
      'SEEN',
      'COMMIT',
    ]);
    expect(primary.statements).toEqual([]);
    await t.expectClean();
  });

  it('with a token, one status query per consistency.refresh at most (two reads, one ask)', async () => {
    const primary = await WireProxy.start(portOf(pair().primary));
    const replica = await WireProxy.start(portOf(pair().replica));
    proxies.push(primary, replica);
    t = await createReviewApp({
      primary: withPort(pair().primary, primary.port),
      slaves: [withPort(pair().replica, replica.port)],
      context: { consistency: { header: HEADER, refresh: 60_000 } },
      controllers: [CostController],
    });
    primary.clear();
    const write = await t.http().post('/c/write/tok').expect(201);
    const token = write.headers[HEADER] as string;
    expect(token).toMatch(/^default=/);
    // The write's COMMIT is one message of three statements: no extra round trip.
    const commit = primary.statements.filter((sql) => sql.includes('COMMIT'));
    expect(commit).toHaveLength(1);
    expect(commit[0]).toMatch(
      /^SELECT txid_current_if_assigned\(\) IS NOT NULL AS wrote; COMMIT; SELECT/,
    );
    await t.replayed();
    replica.clear();
    for (let i = 0; i < 2; i++) {
      const read = await t.http().get('/c/read/tok').set(HEADER, token).expect(200);
      expect(read.body).toEqual({ replica: true, port: portOf(pair().replica), seen: 1 });
    }
    expect(replica.statements.filter((sql) => TOKEN_SQL.test(sql))).toHaveLength(1);
    await t.expectClean();
  });
});
