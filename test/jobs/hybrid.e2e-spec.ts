import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication, type LoggerService } from '@nestjs/common';
import {
  ClientProxyFactory,
  EventPattern,
  MessagePattern,
  RpcException,
  Transport,
  type ClientProxy,
  type MicroserviceOptions,
} from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import amqp from 'amqplib';
import { firstValueFrom } from 'rxjs';
import { DataSource, type Repository } from 'typeorm';
import { SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { HANG_MS, within } from '../correctness/support-b.js';
import { freePort } from '../global-setup.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from './jobs-support.js';

const RABBIT = 'amqp://guest:guest@127.0.0.1:5672';

/** Keeps what was logged as a warning. */
class WarningsLogger implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

@Controller()
class MessagesController {
  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    private readonly context: SessionContext,
  ) {}

  /** Writes two rows; fails after writing when asked. */
  @MessagePattern('jobs.insert')
  async insert({ text, fail }: { text: string; fail?: boolean }) {
    await this.examples.insert({ text });
    await this.context.session().insert(Example, { text: `${text}/2` });
    if (fail) throw new RpcException('refused');
    return 'stored';
  }

  @EventPattern('jobs.event')
  async event({ text }: { text: string }) {
    await this.context.session().insert(Example, { text });
  }
}

/** A hybrid app: HTTP plus `transports`, each connected with or without the app's configuration. */
async function startHybrid(
  engine: Engine,
  transports: Array<[MicroserviceOptions, boolean]>,
  context = {},
  connectAfterInit = false,
): Promise<{ t: TestApp; warnings: string[] }> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine)),
      TypeOrmContextModule.forRoot(context),
      TypeOrmContextModule.forFeature([Example]),
    ],
    controllers: [MessagesController],
  }).compile();
  const logger = new WarningsLogger();
  const app: INestApplication = moduleRef.createNestApplication({ logger });
  if (connectAfterInit) await app.init();
  for (const [options, inheritAppConfig] of transports) {
    app.connectMicroservice(options, { inheritAppConfig });
  }
  await app.startAllMicroservices();
  await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return { t: wrap(app, engine, dataSource), warnings: logger.warnings };
}

const tcp = (port: number): MicroserviceOptions => ({
  transport: Transport.TCP,
  options: { port },
});
const rmq = (queue: string): MicroserviceOptions => ({
  transport: Transport.RMQ,
  options: { urls: [RABBIT], queue, queueOptions: { durable: false } },
});

const isMissingAppConfig = (warning: string) => warning.includes('inheritAppConfig: true');

describe.each(engines)('hybrid apps ($name)', (engine) => {
  let t: TestApp | undefined;
  const clients: ClientProxy[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    await t?.close();
    t = undefined;
  });

  function client(options: MicroserviceOptions): ClientProxy {
    const made = ClientProxyFactory.create(
      options as Parameters<typeof ClientProxyFactory.create>[0],
    );
    clients.push(made);
    return made;
  }

  it('a microservice connected without inheritAppConfig is named at startup, once', async () => {
    const [one, two] = [await freePort(), await freePort()];
    let warnings: string[];
    ({ t, warnings } = await startHybrid(engine, [
      [tcp(one), false],
      [tcp(two), false],
    ]));
    expect(warnings.filter(isMissingAppConfig)).toHaveLength(1);
    // What it warns of: the handler runs outside any unit (session() throws after the first write).
    const sent = firstValueFrom(client(tcp(one)).send('jobs.insert', { text: 'outside' }));
    await expect(within(HANG_MS, 'the message', sent)).rejects.toBeDefined();
    expect(await t.texts()).toEqual(['outside']);
  });

  it('one microservice with the app configuration and one without: named', async () => {
    let warnings: string[];
    ({ t, warnings } = await startHybrid(engine, [
      [tcp(await freePort()), true],
      [tcp(await freePort()), false],
    ]));
    expect(warnings.filter(isMissingAppConfig)).toHaveLength(1);
  });

  it('a microservice connected after init() without inheritAppConfig is named too', async () => {
    let warnings: string[];
    ({ t, warnings } = await startHybrid(engine, [[tcp(await freePort()), false]], {}, true));
    expect(warnings.filter(isMissingAppConfig)).toHaveLength(1);
  });

  it('a microservice app of its own (no HTTP) is not named', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmContextModule.forRoot(),
        TypeOrmContextModule.forFeature([Example]),
      ],
      controllers: [MessagesController],
    }).compile();
    const logger = new WarningsLogger();
    const service = moduleRef.createNestMicroservice({ ...tcp(await freePort()), logger });
    await service.listen();
    await service.close();
    expect(logger.warnings.filter(isMissingAppConfig)).toEqual([]);
  });

  it('no warning with autoCommit: false (the interceptor is bound where the app wants it)', async () => {
    let warnings: string[];
    ({ t, warnings } = await startHybrid(engine, [[tcp(await freePort()), false]], {
      autoCommit: false,
    }));
    expect(warnings.filter(isMissingAppConfig)).toEqual([]);
  });

  it('TCP with inheritAppConfig: no warning, each message a unit of work', async () => {
    const port = await freePort();
    let warnings: string[];
    ({ t, warnings } = await startHybrid(engine, [[tcp(port), true]]));
    expect(warnings.filter(isMissingAppConfig)).toEqual([]);
    const tcpClient = client(tcp(port));
    expect(await firstValueFrom(tcpClient.send('jobs.insert', { text: 'kept' }))).toBe('stored');
    await expect(
      firstValueFrom(tcpClient.send('jobs.insert', { text: 'dropped', fail: true })),
    ).rejects.toMatchObject({ message: 'refused' });
    expect(await t.texts()).toEqual(['kept', 'kept/2']);
    await t.expectClean();
  });

  it('RabbitMQ with inheritAppConfig: messages and events each a unit of work', async () => {
    const queue = `jobs-${randomUUID().slice(0, 8)}`;
    let warnings: string[];
    ({ t, warnings } = await startHybrid(engine, [[rmq(queue), true]]));
    try {
      expect(warnings.filter(isMissingAppConfig)).toEqual([]);
      const rabbit = client(rmq(queue));
      expect(await firstValueFrom(rabbit.send('jobs.insert', { text: 'kept' }))).toBe('stored');
      await expect(
        firstValueFrom(rabbit.send('jobs.insert', { text: 'dropped', fail: true })),
      ).rejects.toMatchObject({ message: 'refused' });
      await firstValueFrom(rabbit.emit('jobs.event', { text: 'evented' }));
      const app = t;
      await within(
        HANG_MS,
        'the event',
        waitFor(async () => (await app.rows()) === 3),
      );
      expect(await t.texts()).toEqual(['evented', 'kept', 'kept/2']);
      await t.expectClean();
    } finally {
      await deleteQueue(queue);
    }
  });
});

async function waitFor(probe: () => Promise<boolean>): Promise<void> {
  while (!(await probe())) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function deleteQueue(queue: string): Promise<void> {
  const connection = await amqp.connect(RABBIT);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(queue);
    await channel.close();
  } finally {
    await connection.close();
  }
}
