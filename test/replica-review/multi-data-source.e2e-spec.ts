import { Controller, Get, type INestApplication, Param, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { waitForReplay } from '../support/standby.js';
import { idleBoth, pair, pauseReplay, resumeReplay, runOn } from '../replicas/replica-app.js';
import { ReplicaItem, where } from '../replicas/replica-item.js';
import { positionIn, rowsOn } from './r22-app.js';

const HEADER = 'x-ct';
/** A data source name with characters a header or cookie cannot carry as they are. */
const ODD = 'rep&or=ts; x/ü';

@Controller('md')
class TwoSourcesController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:source/:text')
  async write(@Param('source') source: string, @Param('text') text: string) {
    await this.context.session(source === 'odd' ? ODD : 'default').insert(ReplicaItem, { text });
    return {};
  }

  @Get('read/:source/:text')
  read(@Param('source') source: string, @Param('text') text: string) {
    return this.factory.atomic(
      async (manager) => ({
        ...(await where(manager)),
        seen: await manager.countBy(ReplicaItem, { text }),
      }),
      { readOnly: true, dataSource: source === 'odd' ? ODD : 'default' },
    );
  }
}

describe('Replica review: two replicated data sources on one cluster, one with an odd name', () => {
  let app: INestApplication;
  const http = () => request(app.getHttpServer());
  const replayed = async () => {
    const rows = await runOn(pair().primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
    await waitForReplay(pair().replica, rows[0]!.lsn as string);
  };

  beforeAll(async () => {
    const replication = {
      master: { url: pair().primary },
      slaves: [{ url: pair().replica }],
    };
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          replication,
          entities: [ReplicaItem],
          synchronize: true,
        }),
        TypeOrmModule.forRoot({
          name: ODD,
          type: 'postgres',
          replication,
          entities: [ReplicaItem],
        }),
        TypeOrmContextModule.forRoot({
          dataSources: ['default', ODD],
          consistency: { header: HEADER, cookie: 'ct' },
        }),
      ],
      controllers: [TwoSourcesController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    await runOn(pair().primary, 'DELETE FROM replica_item');
    await replayed();
  });
  afterAll(async () => {
    await resumeReplay();
    await app.close();
  });
  afterEach(async () => {
    await resumeReplay();
    await replayed();
    await eventually(async () => (await idleBoth()) === 0);
  });

  it('the odd name round-trips in the header and the cookie; its reads honour it', async () => {
    await pauseReplay();
    const res = await http().post('/md/write/odd/odd-name').expect(201);
    const token = res.headers[HEADER] as string;
    expect(positionIn(token, ODD)).toBeGreaterThan(0n);
    const cookie = (res.headers['set-cookie'] as unknown as string[])[0]!;
    // A cookie value may not hold a space, a semicolon, a comma or a quote.
    expect(cookie.split(';')[0]).toMatch(/^ct=[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/);
    const byHeader = await http().get('/md/read/odd/odd-name').set(HEADER, token);
    expect(byHeader.body).toMatchObject({ replica: false, seen: 1 });
    const byCookie = await http().get('/md/read/odd/odd-name').set('Cookie', cookie.split(';')[0]!);
    expect(byCookie.body).toMatchObject({ replica: false, seen: 1 });
  });

  it('a write on one data source, a read of the same table through the other (same cluster)', async () => {
    await pauseReplay();
    const res = await http().post('/md/write/default/cross').expect(201);
    const token = res.headers[HEADER] as string;
    expect(await rowsOn(pair().primary, 'cross')).toBe(1);
    expect(await rowsOn(pair().replica, 'cross')).toBe(0);
    // The token names the primary's WAL position; the other data source reads the same cluster,
    // so the client's read must not run on a standby that has not replayed its write.
    const read = await http().get('/md/read/odd/cross').set(HEADER, token);
    expect(read.body).toMatchObject({ seen: 1 });
  });
});
