import { request as httpRequest } from 'node:http';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule } from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { FastifyController, fastifyProbe, WritingGuard } from './fastify.controller.js';

/** Sends a POST whose JSON body arrives `delayMs` after the headers, in two pieces. */
function slowPost(
  port: number,
  path: string,
  body: unknown,
  delayMs: number,
): Promise<{ status: number; body: string }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', reject);
    req.flushHeaders();
    const half = Math.floor(payload.length / 2);
    setTimeout(() => req.write(payload.subarray(0, half)), delayMs / 2);
    setTimeout(() => req.end(payload.subarray(half)), delayMs);
  });
}

describe.each(engines)('Fastify (FastifyAdapter) ($name)', (engine: Engine) => {
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    fastifyProbe.engine = engine;
    const moduleRef = await Test.createTestingModule({
      imports: [TypeOrmModule.forRoot(typeormOptions(engine, 5)), TypeOrmContextModule.forRoot()],
      controllers: [FastifyController],
      providers: [WritingGuard],
    }).compile();
    const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
      logger: process.env.TEST_LOG ? ['error', 'warn'] : false,
    });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as { port: number }).port;
    t = wrap(app, engine, app.get(DataSource));
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('a request that never touches the database takes no connection', async () => {
    const { body } = await t.http().get('/noop').expect(200);
    expect(body).toEqual({ checkedOut: 0 });
  });

  it('commits before the response is sent', async () => {
    let rowsAtResponse = -1;
    await t
      .http()
      .post('/insert')
      .send({ text: 'committed' })
      .expect(201)
      .then(async () => {
        rowsAtResponse = await t.rows();
      });
    expect(rowsAtResponse).toBe(1);
    expect(await t.texts()).toEqual(['committed']);
  });

  it('a handler that throws after writing: 400, and the write is rolled back', async () => {
    await t.http().post('/fail').send({ text: 'rolled_back' }).expect(400);
    expect(await t.rows()).toBe(0);
  });

  it("a guard that writes shares the handler's connection and transaction; both commit together", async () => {
    const { body } = await t.http().post('/guarded').expect(201);
    expect(body.guard.backend).toBe(body.handler.backend);
    expect(body.guard.txid).not.toBeNull();
    expect(body.guard.txid).toBe(body.handler.txid);
    expect(await t.texts()).toEqual(['written_by_guard', 'written_by_handler']);
  });

  it('a body that arrives after the headers still runs in the request context and commits', async () => {
    const [slow, quick] = await Promise.all([
      slowPost(port, '/insert', { text: 'slow_body' }, 300),
      t.http().post('/insert').send({ text: 'quick_body' }),
    ]);
    expect(slow.status).toBe(201);
    expect(JSON.parse(slow.body)).toEqual({ stored: 'slow_body' });
    expect(quick.status).toBe(201);
    expect(await t.texts()).toEqual(['quick_body', 'slow_body']);
  });

  it('a burst of 60 mixed requests on a pool of 5: every success committed, every failure rolled back', async () => {
    const kinds = ['insert', 'fail', 'count', 'parallel', 'noop', 'guarded'] as const;
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const kind = kinds[i % kinds.length];
        const text = `burst_${i}`;
        if (kind === 'count' || kind === 'noop') return t.http().get(`/${kind}`);
        return t.http().post(`/${kind}`).send({ text });
      }),
    );
    const expected: string[] = [];
    responses.forEach((response, i) => {
      const kind = kinds[i % kinds.length];
      if (kind === 'fail') return expect(response.status).toBe(400);
      expect(response.status).toBe(kind === 'count' || kind === 'noop' ? 200 : 201);
      if (kind === 'insert') expected.push(`burst_${i}`);
      if (kind === 'parallel') expected.push(`burst_${i}`, `burst_${i}_a`, `burst_${i}_b`);
      if (kind === 'guarded') expected.push('written_by_guard', 'written_by_handler');
    });
    expect(await t.texts()).toEqual(expected.sort());
    await t.expectClean();
  });

  it('a StreamableFile read from the session is sent whole, then the session is released', async () => {
    const texts = Array.from({ length: 2000 }, (_, i) => `row_${String(i).padStart(4, '0')}`);
    await t.dataSource
      .createQueryBuilder()
      .insert()
      .into('example')
      .values(texts.map((text) => ({ text })))
      .execute();
    const response = await t.http().get('/export').expect(200);
    expect(response.text.trimEnd().split('\n')).toEqual(texts);
    await t.expectClean();
  });
});
