import { pipeline, type Readable, Transform } from 'node:stream';
import { Controller, Get, Post, StreamableFile } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  answered,
  closeApp,
  HANG_MS,
  insertRows,
  readAll,
  sleep,
  terminateServerConnections,
  within,
} from './support-b.js';

const ROWS = 5000;

/** What the handlers leave behind for the test to use after the response. */
const kept: {
  stream?: Readable;
  streamErrors: Error[];
  manager?: EntityManager;
  late?: Promise<Readable>;
  /** Lets the handler's late work start: the test saw the request's context end. */
  contextEnded?: () => void;
} = { streamErrors: [] };

/** Every stream the tests and handlers opened: a hung test drains them so nothing stays blocked. */
const opened = new Set<Readable>();

function track<S extends Readable>(stream: S): S {
  opened.add(stream);
  stream.once('close', () => opened.delete(stream));
  return stream;
}

/**
 * Unblocks whatever waits behind an unread stream (today: the COMMIT of its session): drains the
 * streams, and terminates the server connections as a last resort.
 */
async function unblock(engine: Engine): Promise<void> {
  for (const stream of opened) stream.resume();
  await sleep(500);
  if (engine.name === 'postgres') await terminateServerConnections(engine);
}

/** Turns a stream of raw rows into a stream of lines, one `id` per line. */
function lines(rows: Readable): Readable {
  const toLine = new Transform({
    writableObjectMode: true,
    transform(row: { e_id: number | string }, _encoding, done) {
      done(null, `${row.e_id}\n`);
    },
  });
  pipeline(track(rows), toLine, () => undefined);
  return track(toLine);
}

@Controller('streams')
class StreamsController {
  constructor(
    private readonly context: SessionContext,
    @InjectRepository(Example) private readonly examples: Repository<Example>,
  ) {}

  /** A file streamed from the request's session. */
  @Get('session')
  async fromSession() {
    const rows = await this.context
      .session()
      .createQueryBuilder(Example, 'e')
      .select('e.id')
      .orderBy('e.id')
      .stream();
    return new StreamableFile(lines(rows), { type: 'text/plain' });
  }

  /** A file streamed from a forFeature() repository (the request's session too). */
  @Get('repository')
  async fromRepository() {
    const rows = await this.examples
      .createQueryBuilder('e')
      .select('e.id')
      .orderBy('e.id')
      .stream();
    return new StreamableFile(lines(rows), { type: 'text/plain' });
  }

  /** Opens a stream, keeps it (and the session) for later, and answers without reading it. */
  @Post('keep')
  async keep() {
    const stream = track(await this.context.session().createQueryBuilder(Example, 'e').stream());
    stream.on('error', (error: Error) => kept.streamErrors.push(error));
    kept.stream = stream;
    kept.manager = this.context.session();
    // A timer of the request, armed once the test has seen the request's context end (a fixed
    // delay could fire before that on a loaded machine): its callback runs in that context.
    const ended = new Promise<void>((resolve) => (kept.contextEnded = resolve));
    kept.late = ended
      .then(() => new Promise((resolve) => setTimeout(resolve, 0)))
      .then(() => this.examples.createQueryBuilder('e').stream());
    kept.late.then(
      (late) => track(late).destroy(),
      () => undefined,
    );
    return 'kept';
  }
}

describe.each(engines)('query-builder streams in sessions ($name)', (engine: Engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [StreamsController],
      imports: [TypeOrmContextModule.forFeature([Example])],
    });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(async () => {
    kept.stream = undefined;
    kept.streamErrors = [];
    kept.manager = undefined;
    kept.late = undefined;
    kept.contextEnded = undefined;
    await t.dataSource.query('DELETE FROM example');
    await insertRows(t.dataSource, ROWS);
  });
  afterEach(async () => {
    kept.stream?.destroy();
    await t.expectClean();
  });
  afterAll(() => closeApp(t, engine));

  it('a StreamableFile over a query-builder stream answers 200 with every row (session and forFeature repository)', async () => {
    const slow = { ms: 10_000, unblock: () => unblock(engine) };
    const [fromSession, fromRepository] = await Promise.all([
      answered(t.http().get('/streams/session'), engine, 'GET /streams/session', slow),
      answered(t.http().get('/streams/repository'), engine, 'GET /streams/repository', slow),
    ]);
    for (const response of [fromSession, fromRepository]) {
      expect(response.status).toBe(200); // never a 400 from StreamableFile's error handler
      const ids = response.text.split('\n').filter(Boolean);
      expect(ids).toHaveLength(ROWS);
      expect(new Set(ids).size).toBe(ROWS);
    }
  }, 25_000);

  it('runInNewContext() that returns with an unread stream settles, destroys the stream with SessionContextEndedError and commits its writes', async () => {
    let stream: Readable | undefined;
    const errors: Error[] = [];
    await within(
      HANG_MS,
      'runInNewContext() returning with an unread stream',
      factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'before_stream' });
        stream = track(await context.session().createQueryBuilder(Example, 'e').stream());
        stream.on('error', (error: Error) => errors.push(error));
      }),
      () => unblock(engine),
    );
    await eventually(() => errors.length > 0, 1000).catch(() => undefined);
    expect(stream!.destroyed).toBe(true);
    expect(errors.map((error) => error.name)).toEqual(['SessionContextEndedError']);
    const committed: Array<{ n: number | string }> = await t.dataSource.query(
      "SELECT count(*) AS n FROM example WHERE text = 'before_stream'",
    );
    expect(Number(committed[0]?.n)).toBe(1);
  });

  it('a query on the session while a stream is open waits for the stream (never queued in the driver)', async () => {
    const outcome = await within(
      HANG_MS,
      'reading a stream while a query waits for it',
      factory.runInNewContext(async () => {
        const session = context.session();
        await session.query('SELECT 1');
        const stream = track(
          await session.createQueryBuilder(Example, 'e').select('e.id').orderBy('e.id').stream(),
        );
        const order: string[] = [];
        stream.on('end', () => order.push('stream ended'));
        const other = session.query('SELECT 1 AS one').then((rows: Array<{ one: unknown }>) => {
          order.push('query answered');
          return rows;
        });
        await sleep(30); // the stream is open and unread; the query was issued
        const client = (
          session.queryRunner as unknown as { databaseConnection?: { _queryQueue?: unknown[] } }
        ).databaseConnection;
        const driverQueue = client?._queryQueue?.length ?? 0;
        const [rows, answer] = await Promise.all([readAll(stream), other]);
        return { rows, answer, order, driverQueue };
      }),
      () => unblock(engine),
    );
    expect(outcome.rows).toBe(ROWS);
    expect(Number(outcome.answer[0]?.one)).toBe(1);
    expect(outcome.order).toEqual(['stream ended', 'query answered']);
    // pg deprecates overlapping client.query() calls: the session must hold the query itself.
    expect(outcome.driverQueue).toBe(0);
  });

  it("writes issued in a stream's 'data' listener run after the stream ends, and the stream ends", async () => {
    const outcome = await within(
      HANG_MS,
      "a stream whose 'data' listener writes on the same session",
      factory.runInNewContext(async () => {
        const session = context.session();
        const stream = track(
          await session.createQueryBuilder(Example, 'e').select('e.id').limit(3).stream(),
        );
        const order: string[] = [];
        const writes: Array<Promise<unknown>> = [];
        await new Promise<void>((resolve, reject) => {
          stream.on('data', () => {
            const write = session.insert(Example, { text: 'written_in_data' });
            writes.push(write.then(() => order.push('write')));
          });
          stream.on('end', () => {
            order.push('stream ended');
            resolve();
          });
          stream.on('error', reject);
        });
        await Promise.all(writes);
        return order;
      }),
      () => unblock(engine),
    );
    expect(outcome).toEqual(['stream ended', 'write', 'write', 'write']);
    const written: Array<{ n: number | string }> = await t.dataSource.query(
      "SELECT count(*) AS n FROM example WHERE text = 'written_in_data'",
    );
    expect(Number(written[0]?.n)).toBe(3);
  });

  it('a stream kept past its request fails with SessionContextEndedError when read, and stream() after the context ended rejects', async () => {
    const response = await answered(
      t.http().post('/streams/keep'),
      engine,
      'POST /streams/keep (a handler that keeps an unread stream)',
      { unblock: () => unblock(engine) },
    );
    expect(response.status).toBe(201);
    expect(response.text).toBe('kept');
    // Read after the response: the request's context has ended.
    await expect(
      within(HANG_MS, 'reading a stream after its request ended', readAll(kept.stream!)),
    ).rejects.toMatchObject({ name: 'SessionContextEndedError' });
    await expect(
      within(
        HANG_MS,
        'stream() on the session of an ended request',
        Promise.resolve().then(() => kept.manager!.createQueryBuilder(Example, 'e').stream()),
      ),
    ).rejects.toMatchObject({ name: 'SessionContextEndedError' });
    kept.contextEnded!();
    await expect(
      within(HANG_MS, 'stream() from a timer of an ended request', kept.late!),
    ).rejects.toMatchObject({ name: 'SessionContextEndedError' });
    expect(await t.rows()).toBe(ROWS);
  });
});
