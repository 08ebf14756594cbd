/**
 * Round three: TypeORM's replica pools read when used (`ReplicaPools.pools`): `replication`
 * without slaves, a data source initialized after app.init() (`manualInitialization`), and one
 * destroyed and initialized again. Where each read ran is asked of the server
 * (pg_is_in_recovery(), inet_server_port()), what it saw is counted there.
 */
import { Controller, Get, Param, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import {
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { parseLsn } from '../../src/session/wal-position.js';
import { pair, pauseReplay, portOf, resumeReplay, runOn } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { waitForReplay } from '../support/standby.js';
import { HEADER, onPrimary, primaryLsn, seen } from '../replica-review2/review-app.js';

@Controller('l')
class LifeController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  @Get('read/:text')
  read(@Param('text') text: string) {
    return this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
  }
}

async function build(
  slaves: string[],
  context: TypeOrmContextModuleOptions,
  manual = false,
): Promise<{ app: INestApplication; dataSource: DataSource }> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        replication: { master: { url: pair().primary }, slaves: slaves.map((url) => ({ url })) },
        entities: [ReplicaItem],
        synchronize: !manual,
        logging: false,
        manualInitialization: manual,
      }),
      TypeOrmContextModule.forRoot(context),
    ],
    controllers: [LifeController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, dataSource: app.get(DataSource) };
}

const replayed = async () => waitForReplay(pair().replica, await primaryLsn());

async function checkToken(token: unknown): Promise<bigint> {
  expect(token).toEqual(expect.stringMatching(/^default=[0-9A-F]+\/[0-9A-F]+$/));
  const position = parseLsn(String(token).split('=')[1])!;
  expect(position).toBeLessThanOrEqual(parseLsn(await primaryLsn())!);
  return position;
}

const PRIMARY = () => ({ replica: false, port: portOf(pair().primary) });
const STANDBY = () => ({ replica: true, port: portOf(pair().replica) });

describe('Replica review 3: replica pools read when used', () => {
  let app: INestApplication | undefined;
  beforeAll(async () => {
    await runOn(pair().primary, 'DELETE FROM replica_item').catch(() => undefined);
  });
  afterEach(async () => {
    await resumeReplay();
    await app?.close();
    app = undefined;
  });

  it("replication: { master, slaves: [] } reads on the primary, tokens work, and behind/replicaDown 'fail' do not fail it", async () => {
    ({ app } = await build([], {
      consistency: { header: HEADER, behind: 'fail', wait: 50 },
      replicaDown: 'fail',
    }));
    const http = () => request(app!.getHttpServer());
    const plain = await http().get('/l/read/none-0').expect(200);
    expect(plain.body).toEqual({ ...PRIMARY(), seen: 0 });
    const write = await http().post('/l/write/none-1').expect(201);
    expect(await onPrimary('none-1')).toBe(1);
    await checkToken(write.headers[HEADER]);
    const read = await http()
      .get('/l/read/none-1')
      .set(HEADER, write.headers[HEADER] as string)
      .expect(200);
    expect(read.body).toEqual({ ...PRIMARY(), seen: 1 });
  });

  it('a data source initialized after app.init() (manualInitialization) routes to its replica and honours tokens', async () => {
    let dataSource: DataSource;
    ({ app, dataSource } = await build(
      [pair().replica],
      { consistency: { header: HEADER, wait: 100 } },
      true,
    ));
    await dataSource.initialize();
    await replayed();
    const http = () => request(app!.getHttpServer());
    expect((await http().get('/l/read/manual-0').expect(200)).body).toEqual({
      ...STANDBY(),
      seen: 0,
    });
    await pauseReplay();
    const write = await http().post('/l/write/manual-1').expect(201);
    expect(await onPrimary('manual-1')).toBe(1);
    await checkToken(write.headers[HEADER]);
    const read = await http()
      .get('/l/read/manual-1')
      .set(HEADER, write.headers[HEADER] as string)
      .expect(200);
    // The paused standby has not replayed it: the read goes to the primary, and sees the row.
    expect(read.body).toEqual({ ...PRIMARY(), seen: 1 });
    await resumeReplay();
    await replayed();
    const later = await http()
      .get('/l/read/manual-1')
      .set(HEADER, write.headers[HEADER] as string)
      .expect(200);
    expect(later.body).toEqual({ ...STANDBY(), seen: 1 });
  });

  it('a data source destroyed and initialized again: routing and tokens follow its new pools', async () => {
    let dataSource: DataSource;
    ({ app, dataSource } = await build([pair().replica], {
      consistency: { header: HEADER, wait: 100 },
    }));
    await replayed();
    const http = () => request(app!.getHttpServer());
    expect((await http().get('/l/read/again-0').expect(200)).body).toEqual({
      ...STANDBY(),
      seen: 0,
    });
    await dataSource.destroy();
    await dataSource.initialize();
    expect((await http().get('/l/read/again-0').expect(200)).body).toEqual({
      ...STANDBY(),
      seen: 0,
    });
    await pauseReplay();
    const write = await http().post('/l/write/again-1').expect(201);
    expect(await onPrimary('again-1')).toBe(1);
    await checkToken(write.headers[HEADER]);
    const read = await http()
      .get('/l/read/again-1')
      .set(HEADER, write.headers[HEADER] as string)
      .expect(200);
    expect(read.body).toEqual({ ...PRIMARY(), seen: 1 });
    await resumeReplay();
    await replayed();
    const later = await http()
      .get('/l/read/again-1')
      .set(HEADER, write.headers[HEADER] as string)
      .expect(200);
    expect(later.body).toEqual({ ...STANDBY(), seen: 1 });
  });
});
