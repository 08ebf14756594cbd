import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SubscribeMessage, WebSocketGateway, WsException } from '@nestjs/websockets';
import { DataSource } from 'typeorm';
import WebSocket from 'ws';
import { SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** A gateway with no @UseInterceptors: the global interceptor reaches it anyway. */
@WebSocketGateway()
class PlainGateway {
  constructor(private readonly context: SessionContext) {}

  @SubscribeMessage('insert')
  async insert(_client: unknown, text: string) {
    await this.context.session().insert(Example, { text });
    await this.context.session().insert(Example, { text: `${text}, again` });
    return { event: 'stored', data: text };
  }

  @SubscribeMessage('fail')
  async fail(_client: unknown, text: string) {
    await this.context.session().insert(Example, { text });
    throw new WsException('refused');
  }
}

describe.each(engines)('WebSocket gateways and the global interceptor ($name)', (engine) => {
  it('a gateway without @UseInterceptors gets a unit per event: committed, or rolled back', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot()],
      providers: [PlainGateway],
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
      const next = () =>
        new Promise<{ event: string; data: unknown }>((resolve) =>
          socket.once('message', (data) => resolve(JSON.parse(String(data)))),
        );
      const stored = next();
      socket.send(JSON.stringify({ event: 'insert', data: 'from a socket' }));
      expect((await stored).event).toBe('stored');
      expect(await t.texts()).toEqual(['from a socket', 'from a socket, again']);
      const failed = next();
      socket.send(JSON.stringify({ event: 'fail', data: 'rolled back' }));
      expect((await failed).event).toBe('exception');
      expect(await t.texts()).toEqual(['from a socket', 'from a socket, again']);
      if (engine.name === 'postgres') {
        const rows: Array<{ xmin: string }> = await t.dataSource.query(
          'SELECT xmin::text AS xmin FROM example',
        );
        expect(new Set(rows.map((row) => row.xmin)).size).toBe(1); // one transaction per event
      }
      socket.close();
      await t.expectClean();
    } finally {
      await app.close();
    }
  });
});
