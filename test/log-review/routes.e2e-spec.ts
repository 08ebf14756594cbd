import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Param, UseInterceptors, VersioningType } from '@nestjs/common';
import {
  type ClientProxy,
  ClientProxyFactory,
  EventPattern,
  MessagePattern,
  Payload,
  Transport,
} from '@nestjs/microservices';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { firstValueFrom } from 'rxjs';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { AutoCommitInterceptor, SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { freePort } from '../global-setup.js';
import { eventually, typeormOptions } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { record, type Recorder } from '../observability/recorder.js';

@Controller({ path: 'users', version: '1' })
class UsersController {
  constructor(private readonly context: SessionContext) {}

  @Get(':id')
  async one(@Param('id') id: string): Promise<{ id: string }> {
    await this.context.session().insert(Example, { text: `user ${id}` });
    return { id };
  }
}

@Controller()
@UseInterceptors(AutoCommitInterceptor)
class MessagesController {
  constructor(private readonly context: SessionContext) {}

  /** Two patterns: a message of either runs this handler. */
  @MessagePattern(['sum', 'add'])
  async sum(@Payload() numbers: number[]): Promise<number> {
    await this.context.session().insert(Example, { text: `sum ${numbers.join('+')}` });
    return numbers.reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: 'sum' })
  async cmd(@Payload() numbers: number[]): Promise<number> {
    await this.context.session().insert(Example, { text: `cmd ${numbers.join('+')}` });
    return numbers.reduce((a, b) => a + b, 0);
  }

  @EventPattern('happened')
  async happened(@Payload() text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }
}

/**
 * Review attack: the `route` of the `unit` channel (docs/observability.md): "the route's template
 * or the message pattern it serves (`POST /users/:id`, `{"cmd":"sum"}`)".
 */
describe.each(engines)('unit route, review ($name)', (engine) => {
  let recorder: Recorder | undefined;
  const closers: Array<() => Promise<void>> = [];

  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    while (closers.length > 0) await closers.pop()!();
  });

  const ends = () =>
    recorder!.events.filter((event) => event.channel === 'unit' && event.event === 'asyncEnd');

  it.each(['express', 'fastify'])(
    '%s: a versioned route under a global prefix is GET /api/v1/users/:id',
    async (platform) => {
      const moduleRef = await Test.createTestingModule({
        imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot()],
        controllers: [UsersController],
      }).compile();
      const app =
        platform === 'fastify'
          ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
          : moduleRef.createNestApplication({ logger: false });
      app.setGlobalPrefix('api');
      app.enableVersioning({ type: VersioningType.URI });
      await app.init();
      if (platform === 'fastify') await app.getHttpAdapter().getInstance().ready();
      closers.push(() => app.close());
      const dataSource = app.get(DataSource);
      await dataSource.query('DELETE FROM example');
      recorder = record();
      await request(app.getHttpServer()).get('/api/v1/users/42').expect(200);
      await eventually(() => ends().length === 1);
      expect(ends()).toEqual([
        expect.objectContaining({
          kind: 'http',
          handler: 'UsersController.one()',
          route: 'GET /api/v1/users/:id',
          outcome: 'committed',
        }),
      ]);
      const rows: Array<{ text: string }> = await dataSource.query('SELECT text FROM example');
      expect(rows.map((row) => row.text)).toEqual(['user 42']);
    },
  );

  async function microservice(): Promise<{ client: ClientProxy; dataSource: DataSource }> {
    const port = await freePort();
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot()],
      controllers: [MessagesController],
    }).compile();
    const service = moduleRef.createNestMicroservice({
      transport: Transport.TCP,
      options: { port },
    });
    service.useLogger(false);
    await service.listen();
    const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { port } });
    closers.push(async () => {
      client.close();
      await service.close();
    });
    const dataSource = service.get(DataSource);
    await dataSource.query('DELETE FROM example');
    return { client, dataSource };
  }

  it('rpc: a {cmd} pattern is {"cmd":"sum"}, an event pattern its name', async () => {
    const { client, dataSource } = await microservice();
    recorder = record();
    expect(await firstValueFrom(client.send({ cmd: 'sum' }, [1, 2]))).toBe(3);
    await firstValueFrom(client.emit('happened', 'an event'));
    await eventually(() => ends().length === 2);
    expect(ends()).toEqual([
      expect.objectContaining({ kind: 'rpc', route: '{"cmd":"sum"}', outcome: 'committed' }),
      expect.objectContaining({ kind: 'rpc', route: 'happened', outcome: 'committed' }),
    ]);
    const rows: Array<{ text: string }> = await dataSource.query(
      'SELECT text FROM example ORDER BY text',
    );
    expect(rows.map((row) => row.text)).toEqual(['an event', 'cmd 1+2']);
  });
});
