/**
 * Round two: two Nest apps in one process on one shared replicated DataSource, each with its own
 * consistency options: tokens, positions and the startup probe stay each app's, and a token one
 * app sent is honoured by the other (the token is the database's position, not the process's).
 */
import { Controller, Get, type INestApplication, Param, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { pair, pauseReplay, portOf, resumeReplay, runOn } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { onPrimary, seen } from './review-app.js';

@Controller('two')
class TwoController {
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

async function appOn(shared: DataSource, header: string): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRootAsync({
        useFactory: () => ({ type: 'postgres' as const }),
        dataSourceFactory: async () => shared,
      }),
      TypeOrmContextModule.forRoot({ consistency: { header } }),
    ],
    controllers: [TwoController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

describe('Replica review 2: two apps on one DataSource', () => {
  let shared: DataSource;
  let a: INestApplication;
  let b: INestApplication;
  beforeAll(async () => {
    shared = new DataSource({
      type: 'postgres',
      replication: { master: { url: pair().primary }, slaves: [{ url: pair().replica }] },
      entities: [ReplicaItem],
      synchronize: true,
    });
    await shared.initialize();
    a = await appOn(shared, 'x-token-a');
    b = await appOn(shared, 'x-token-b');
    await runOn(pair().primary, 'DELETE FROM replica_item');
  });
  afterEach(() => resumeReplay());
  afterAll(async () => {
    await b.close().catch(() => undefined);
    await a.close().catch(() => undefined);
    if (shared.isInitialized) await shared.destroy();
  });

  it("each app sends its own header; a token of one app is honoured by the other; no app's header leaks into the other's", async () => {
    await pauseReplay();
    const wa = await request(a.getHttpServer()).post('/two/write/two-a').expect(201);
    const wb = await request(b.getHttpServer()).post('/two/write/two-b').expect(201);
    expect([await onPrimary('two-a'), await onPrimary('two-b')]).toEqual([1, 1]);
    expect(wa.headers['x-token-a']).toMatch(/^default=/);
    expect(wa.headers['x-token-b']).toBeUndefined();
    expect(wb.headers['x-token-b']).toMatch(/^default=/);
    expect(wb.headers['x-token-a']).toBeUndefined();
    // A's token, carried to B (its header name): B reads on the primary and sees A's row.
    const inB = await request(b.getHttpServer())
      .get('/two/read/two-a')
      .set('x-token-b', wa.headers['x-token-a'] as string)
      .expect(200);
    expect(inB.body).toEqual({ replica: false, port: portOf(pair().primary), seen: 1 });
    // Without a token, each app reads on the paused standby.
    const plainA = await request(a.getHttpServer()).get('/two/read/two-b').expect(200);
    expect(plainA.body).toEqual({ replica: true, port: portOf(pair().replica), seen: 0 });
  });
});
