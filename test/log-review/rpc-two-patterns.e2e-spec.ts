import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, UseInterceptors } from '@nestjs/common';
import {
  type ClientProxy,
  ClientProxyFactory,
  EventPattern,
  MessagePattern,
  Payload,
  Transport,
} from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { firstValueFrom } from 'rxjs';
import { DataSource } from 'typeorm';
import { AutoCommitInterceptor, SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { freePort } from '../global-setup.js';
import { eventually, typeormOptions } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { record, type Recorder } from '../observability/recorder.js';

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
 * Review bug: `@MessagePattern(['sum', 'add'])` (Nest takes an array of patterns) serving a
 * message on 'add' gets route 'sum': `routeOf()` reads the handler's first pattern, not the one
 * the message came on. docs/observability.md: `route` is "the message pattern it serves".
 */
describe.each(engines)('unit route of a two-pattern handler, review ($name)', (engine) => {
  let recorder: Recorder | undefined;
  const closers: Array<() => Promise<void>> = [];

  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    while (closers.length > 0) await closers.pop()!();
  });

  const ends = () =>
    recorder!.events.filter((event) => event.channel === 'unit' && event.event === 'asyncEnd');

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

  it('rpc: a handler of two patterns names the pattern the message came on', async () => {
    const { client, dataSource } = await microservice();
    recorder = record();
    expect(await firstValueFrom(client.send('add', [2, 3]))).toBe(5);
    await eventually(() => ends().length === 1);
    const rows: Array<{ text: string }> = await dataSource.query('SELECT text FROM example');
    expect(rows.map((row) => row.text)).toEqual(['sum 2+3']);
    expect(ends()).toEqual([
      expect.objectContaining({
        kind: 'rpc',
        handler: 'MessagesController.sum()',
        route: 'add',
        outcome: 'committed',
      }),
    ]);
  });
});
