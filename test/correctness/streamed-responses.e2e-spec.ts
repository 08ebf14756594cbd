import { Transform } from 'node:stream';
import { Controller, Get, type INestApplication, Sse, StreamableFile } from '@nestjs/common';
import {
  type ClientProxy,
  ClientProxyFactory,
  MessagePattern,
  Transport,
} from '@nestjs/microservices';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { from } from 'rxjs';
import { DataSource } from 'typeorm';
import { SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { freePort } from '../global-setup.js';
import { eventually, type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import {
  checkedOut,
  type Engine,
  engines,
  idleInTransaction,
  enginesAndSqlite,
} from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, within } from './support-b.js';
import { Reading } from './streamed-responses-support.js';

/** Set by the spec: the engine the app runs on (the SQL of the exports differs). */
const probe: { engine?: Engine } = {};

/**
 * What the test hands a streaming handler, one value at a time: the handler awaits `next()`, so
 * the test decides when each value is emitted (and the handler's code, resumed by the await,
 * runs in the request's context).
 */
class Feed {
  private queue: string[] = [];
  private waiting?: (value: string) => void;

  push(value: string): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting(value);
    else this.queue.push(value);
  }

  next(): Promise<string> {
    const value = this.queue.shift();
    if (value !== undefined) return Promise.resolve(value);
    return new Promise((resolve) => (this.waiting = resolve));
  }
}

let feed = new Feed();

/**
 * Emits what the test pushes, writing each value as a row first (when `write` is given). 'end'
 * completes; a value starting with 'fail' is written, then the handler throws; one starting with
 * 'quiet' is written and not emitted.
 */
async function* fed(write?: (text: string) => Promise<unknown>) {
  const source = feed;
  for (;;) {
    const text = await source.next();
    if (text === 'end') return;
    if (write) await write(text);
    if (text.startsWith('fail')) throw new Error(`refused ${text}`);
    if (text.startsWith('quiet')) continue;
    yield { data: text };
  }
}

/** The docs' transform: raw rows in, CSV lines out. */
const toCsvLines = () =>
  new Transform({
    writableObjectMode: true,
    transform(row: Record<string, unknown>, _encoding, done) {
      done(null, `${Object.values(row).join(',')}\n`);
    },
  });

/** Rows whose first one fails on the server. */
function failingFirstRowSql(engine: Engine): string {
  return engine.name === 'postgres'
    ? 'SELECT g, 1 / (1 - g) AS v FROM generate_series(1, 3000) g'
    : 'SELECT seq, IF(seq = 1, (SELECT 1 UNION ALL SELECT 2), seq) AS v FROM seq_1_to_3000';
}

/** 3000 rows whose row 1,500 fails on the server (PostgreSQL: division by zero). */
function failingRowsSql(engine: Engine): string {
  return engine.name === 'postgres'
    ? 'SELECT g, 1 / (1500 - g) AS v FROM generate_series(1, 3000) g'
    : 'SELECT seq, IF(seq = 1500, (SELECT 1 UNION ALL SELECT 2), seq) AS v FROM seq_1_to_3000';
}

/** A million rows: more than any socket buffer holds, so a client that stops reading stalls it. */
function manyRowsSql(engine: Engine): string {
  return engine.name === 'postgres'
    ? 'SELECT g FROM generate_series(1, 1000000) g'
    : 'SELECT seq FROM seq_1_to_1000000';
}

@Controller('streamed')
class StreamedController {
  constructor(private readonly context: SessionContext) {}

  /** The docs' export over a database stream that fails halfway, after a write. */
  @Get('failing-export')
  async failingExport() {
    const session = this.context.session();
    await session.insert(Example, { text: 'written_before_export' });
    const rows = await session.queryRunner!.stream(failingRowsSql(probe.engine!));
    return new StreamableFile(rows.pipe(toCsvLines()));
  }

  /** The docs' export over a database stream that failed before the handler returned. */
  @Get('failed-export')
  async failedExport() {
    const session = this.context.session();
    await session.insert(Example, { text: 'written_before_export' });
    const rows = await session.queryRunner!.stream(failingFirstRowSql(probe.engine!));
    await new Promise((resolve) => rows.once('error', resolve).resume()); // read: it fails at once
    return new StreamableFile(rows.pipe(toCsvLines()));
  }

  /** The docs' export over a long database stream, after a write. */
  @Get('long-export')
  async longExport() {
    const session = this.context.session();
    await session.insert(Example, { text: 'written_before_export' });
    const rows = await session.queryRunner!.stream(manyRowsSql(probe.engine!));
    return new StreamableFile(rows.pipe(toCsvLines()));
  }

  /** Server-sent events, each written as a row before it is emitted. */
  @Sse('events')
  events() {
    return from(fed((text) => this.context.session().insert(Example, { text })));
  }

  /** Server-sent events that never touch the database. */
  @Sse('ticks')
  ticks() {
    return from(fed());
  }
}

@Controller()
class StreamedMessagesController {
  constructor(private readonly context: SessionContext) {}

  /** A streamed reply, each value written as a row before it is emitted. */
  @MessagePattern('events')
  events() {
    return from(fed((text) => this.context.session().insert(Example, { text })));
  }
}

/** Resolves once no connection is checked out and none is idle in transaction. */
async function expectReleased(engine: Engine, dataSource: DataSource): Promise<void> {
  await eventually(
    async () => checkedOut(dataSource) === 0 && (await idleInTransaction(engine, dataSource)) === 0,
    HANG_MS,
  );
}

const platforms = ['express', 'fastify'] as const;
const cases = engines.flatMap((engine) => platforms.map((platform) => ({ engine, platform })));

describe.each(cases)('streamed responses ($engine.name, $platform)', ({ engine, platform }) => {
  let t: TestApp;
  let port: number;
  const readings: Reading[] = [];
  const read = (path: string) => {
    const reading = new Reading(port, path);
    readings.push(reading);
    return reading;
  };

  beforeAll(async () => {
    probe.engine = engine;
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine, 5)), TypeOrmContextModule.forRoot()],
      controllers: [StreamedController],
    }).compile();
    const logger = process.env.TEST_LOG ? (['error', 'warn'] as const) : false;
    const app: INestApplication =
      platform === 'express'
        ? moduleRef.createNestApplication({ logger: logger && [...logger] })
        : moduleRef.createNestApplication(new FastifyAdapter(), { logger: logger && [...logger] });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as { port: number }).port;
    t = wrap(app, engine, app.get(DataSource));
  });
  beforeEach(async () => {
    probe.engine = engine;
    feed = new Feed();
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(async () => {
    for (const reading of readings.splice(0)) reading.close();
    await expectReleased(engine, t.dataSource);
  });
  afterAll(() => closeApp(t, engine));

  it('a StreamableFile whose database stream fails halfway ends the response as failed, rolls the unit back and releases the connection', async () => {
    const download = read('/streamed/failing-export');
    const how = await within(HANG_MS, 'the response of a failing export', download.end);
    expect(how).toBe('failed'); // a cut connection, never a body that looks whole
    expect(download.body).not.toContain('\n3000,'); // the rows past the failure never came
    await expectReleased(engine, t.dataSource);
    expect(await t.texts()).toEqual([]); // the handler's write was rolled back
  });

  it('a StreamableFile whose database stream failed before the handler returned is an error response, rolled back', async () => {
    const download = read('/streamed/failed-export');
    await within(HANG_MS, 'the response of a failed export', download.end);
    expect(download.status).toBe(500);
    await expectReleased(engine, t.dataSource);
    expect(await t.texts()).toEqual([]);
  });

  it('a client that goes away midway through a streamed file releases the connection and rolls back', async () => {
    const download = read('/streamed/long-export');
    await download.waitFor('\n', 'the first rows of the export');
    download.close();
    await expectReleased(engine, t.dataSource);
    expect(await t.texts()).toEqual([]);
  });

  it('@Sse(): each event arrives before the next is emitted, its writes committed, no connection held while the stream is open', async () => {
    const events = read('/streamed/events');
    feed.push('one');
    await events.waitFor('data: one\n', "event 'one' before any other is emitted");
    expect(await t.texts()).toEqual(['one']); // committed before it was sent
    await expectReleased(engine, t.dataSource); // the open stream holds no connection
    feed.push('two');
    await events.waitFor('data: two\n', "event 'two' before any other is emitted");
    expect(await t.texts()).toEqual(['one', 'two']);
    await expectReleased(engine, t.dataSource);
    events.close(); // the client leaves: what it was sent stays committed
    await expectReleased(engine, t.dataSource);
    expect(await t.texts()).toEqual(['one', 'two']);
  });

  it('@Sse(): a client that leaves rolls back only what no event reported yet', async () => {
    const events = read('/streamed/events');
    feed.push('one');
    await events.waitFor('data: one\n', "event 'one'");
    feed.push('quiet'); // written, never sent
    await eventually(async () => (await idleInTransaction(engine, t.dataSource)) === 1, HANG_MS);
    events.close();
    await expectReleased(engine, t.dataSource);
    expect(await t.texts()).toEqual(['one']);
  });

  it('@Sse(): a stream that completes ends the response with its writes committed', async () => {
    const events = read('/streamed/events');
    feed.push('one');
    feed.push('end');
    expect(await within(HANG_MS, 'the end of a completed SSE stream', events.end)).toBe('ended');
    expect(events.body).toContain('data: one\n');
    expect(await t.texts()).toEqual(['one']);
  });

  it('@Sse(): an error after some events rolls back only what no event reported', async () => {
    const events = read('/streamed/events');
    feed.push('one');
    await events.waitFor('data: one\n', "event 'one'");
    feed.push('fail');
    await within(HANG_MS, 'the end of a failed SSE stream', events.end);
    expect(events.body).toContain('event: error');
    await expectReleased(engine, t.dataSource);
    expect(await t.texts()).toEqual(['one']);
  });

  it('@Sse() on a route that never touches the database: each event arrives before the next is emitted', async () => {
    const ticks = read('/streamed/ticks');
    feed.push('a');
    await ticks.waitFor('data: a\n', "event 'a' before any other is emitted");
    feed.push('b');
    await ticks.waitFor('data: b\n', "event 'b' before any other is emitted");
    expect(checkedOut(t.dataSource)).toBe(0);
    feed.push('end');
    expect(await within(HANG_MS, 'the end of the SSE stream', ticks.end)).toBe('ended');
  });
});

describe.each(enginesAndSqlite)('streamed microservice replies ($name)', (engine: Engine) => {
  it('each value of an Observable reply arrives before the next is emitted, its writes committed', async () => {
    feed = new Feed();
    const port = await freePort();
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine, 5)), TypeOrmContextModule.forRoot()],
      controllers: [StreamedMessagesController],
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
    const texts = async () =>
      (
        (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{
          text: string;
        }>
      )
        .map((row) => row.text)
        .sort();
    try {
      await dataSource.query('DELETE FROM example');
      const received: string[] = [];
      let arrived = () => undefined as void;
      const done = new Promise<void>((resolve, reject) => {
        client.send<{ data: string }>('events', {}).subscribe({
          next: (value) => {
            received.push(value.data);
            arrived();
          },
          error: reject,
          complete: resolve,
        });
      });
      const receive = (count: number, what: string) =>
        within(
          HANG_MS,
          what,
          new Promise<void>((resolve) => {
            arrived = () => received.length >= count && resolve();
            arrived();
          }),
        );
      feed.push('one');
      await receive(1, "reply 'one' before any other is emitted");
      expect(await texts()).toEqual(['one']);
      await expectReleased(engine, dataSource);
      feed.push('two');
      await receive(2, "reply 'two' before any other is emitted");
      expect(await texts()).toEqual(['one', 'two']);
      feed.push('end');
      await within(HANG_MS, 'the end of the streamed reply', done);
      expect(received).toEqual(['one', 'two']);
      await expectReleased(engine, dataSource);
    } finally {
      client.close();
      await service.close();
    }
  });
});
