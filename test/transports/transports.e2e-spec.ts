import { Controller, UseInterceptors } from '@nestjs/common';
import {
  ClientProxyFactory,
  MessagePattern,
  RpcException,
  Transport,
  type ClientProxy,
} from '@nestjs/microservices';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { firstValueFrom } from 'rxjs';
import { DataSource } from 'typeorm';
import WebSocket from 'ws';
import { AutoCommitInterceptor, SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { freePort } from '../global-setup.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

@Controller()
class MessagesController {
  constructor(private readonly context: SessionContext) {}

  @MessagePattern('insert')
  async insert(text: string) {
    await this.context.session().insert(Example, { text });
    return 'stored';
  }

  @MessagePattern('fail')
  async fail(text: string) {
    await this.context.session().insert(Example, { text });
    throw new RpcException('refused');
  }
}

/** Bound on the gateway as well as globally: the second one joins the unit (see ws-global-interceptor). */
@WebSocketGateway()
@UseInterceptors(AutoCommitInterceptor)
class EventsGateway {
  constructor(private readonly context: SessionContext) {}

  @SubscribeMessage('insert')
  async insert(_client: unknown, text: string) {
    await this.context.session().insert(Example, { text });
    return { event: 'stored', data: text };
  }
}

describe.each(engines)('microservice and WebSocket handlers ($name)', (engine) => {
  it('a microservice message commits on success and rolls back on an RpcException', async () => {
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
    const client: ClientProxy = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: { port },
    });
    const dataSource = service.get(DataSource);
    try {
      await dataSource.query('DELETE FROM example');
      expect(await firstValueFrom(client.send('insert', 'from_a_message'))).toBe('stored');
      await expect(firstValueFrom(client.send('fail', 'rolled_back'))).rejects.toMatchObject({
        message: 'refused',
      });
      const rows: Array<{ text: string }> = await dataSource.query('SELECT text FROM example');
      expect(rows.map((row) => row.text)).toEqual(['from_a_message']);
    } finally {
      client.close();
      await service.close();
    }
  });

  it('a WebSocket event commits through the interceptor bound on the gateway', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot()],
      providers: [EventsGateway],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    app.useWebSocketAdapter(new WsAdapter(app));
    await app.listen(0, '127.0.0.1');
    const t: TestApp = wrap(app, engine, app.get(DataSource));
    try {
      await t.dataSource.query('DELETE FROM example');
      const { port } = app.getHttpServer().address() as { port: number };
      const socket = new WebSocket(`ws://127.0.0.1:${port}`);
      await new Promise((resolve) => socket.once('open', resolve));
      const reply = new Promise<string>((resolve) =>
        socket.once('message', (data) => resolve(String(data))),
      );
      socket.send(JSON.stringify({ event: 'insert', data: 'from_a_socket' }));
      expect(JSON.parse(await reply)).toEqual({ event: 'stored', data: 'from_a_socket' });
      expect(await t.texts()).toEqual(['from_a_socket']);
      socket.close();
      await t.expectClean();
    } finally {
      await app.close();
    }
  });
});
