/**
 * Round two: SSE and StreamableFile responses of apps with consistency tokens, on Express and
 * Fastify. Documented: a response whose headers went out before the commit carries no token.
 * Checked: nothing breaks, no header is half-written, the rows are on the primary, a commit made
 * before the body started is named by the response's token, and no connection is left out.
 */
import { Controller, Param, Post, Sse, StreamableFile, type MessageEvent } from '@nestjs/common';
import { Transform } from 'node:stream';
import { concatMap, from, type Observable } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { createReviewApp, HEADER, onPrimary, primaryLsn, type ReviewApp } from './review-app.js';
import { parseLsn } from '../../src/session/wal-position.js';
import { eventually } from '../support/create-app.js';

@Controller('st')
class StreamController {
  constructor(private readonly context: SessionContext) {}

  /** Each value writes a row first (committed before the value is sent). */
  @Sse('sse/:tag')
  sse(@Param('tag') tag: string): Observable<MessageEvent> {
    return from([1, 2, 3]).pipe(
      concatMap(async (n) => {
        await this.context.session().insert(ReplicaItem, { text: `${tag}-${n}` });
        return { data: { n } };
      }),
    );
  }

  /** Commits a write, then streams the table from a database stream in a new transaction. */
  @Post('file/:tag')
  async file(@Param('tag') tag: string): Promise<StreamableFile> {
    await this.context.session().insert(ReplicaItem, { text: `${tag}-before` });
    await this.context.commit();
    await this.context.session().insert(ReplicaItem, { text: `${tag}-with-stream` });
    const rows = await this.context
      .session()
      .createQueryBuilder(ReplicaItem, 'i')
      .select('i.text', 'text')
      .where('i.text LIKE :tag', { tag: `${tag}-%` })
      .orderBy('i.text')
      .stream();
    const lines = new Transform({
      objectMode: true,
      transform: (row: { text: string }, _encoding, done) => done(null, `${row.text}\n`),
    });
    rows.pipe(lines);
    return new StreamableFile(lines, { type: 'text/plain' });
  }

  /** A StreamableFile of a buffer, after a write in the request's transaction. */
  @Post('buffer/:tag')
  async buffer(@Param('tag') tag: string): Promise<StreamableFile> {
    await this.context.session().insert(ReplicaItem, { text: tag });
    return new StreamableFile(Buffer.from(`${tag}\n`), { type: 'text/plain' });
  }
}

describe.each([false, true])('Replica review 2: streamed responses (fastify: %s)', (fastify) => {
  let t: ReviewApp;
  beforeAll(async () => {
    t = await createReviewApp({
      fastify,
      context: { consistency: { header: HEADER } },
      controllers: [StreamController],
    });
  });
  afterAll(() => t.close());

  it('an @Sse() stream that writes: every event sent, every row on the primary, no token header, nothing held', async () => {
    const tag = `sse${fastify ? 'f' : 'e'}`;
    const response = await t
      .http()
      .get(`/st/sse/${tag}`)
      .buffer(true)
      .parse((res, done) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => done(null, text));
      });
    expect(response.status).toBe(200);
    expect(response.body).toContain('data: {"n":3}');
    for (const n of [1, 2, 3]) expect(await onPrimary(`${tag}-${n}`)).toBe(1);
    expect(response.headers[HEADER]).toBeUndefined();
    await t.expectClean();
  });

  it('a StreamableFile reading a database stream: the body is whole, the earlier commit is named by the token', async () => {
    const tag = `file${fastify ? 'f' : 'e'}`;
    const before = parseLsn(await primaryLsn())!;
    const response = await t
      .http()
      .post(`/st/file/${tag}`)
      .buffer(true)
      .parse((res, done) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => done(null, text));
      });
    expect(response.status).toBe(201);
    expect(response.body).toBe(`${tag}-before\n${tag}-with-stream\n`);
    expect(await onPrimary(`${tag}-before`)).toBe(1);
    // Documented: a unit whose answer streams from the database commits after the body was sent.
    await eventually(async () => (await onPrimary(`${tag}-with-stream`)) === 1);
    const token = response.headers[HEADER] as string | undefined;
    expect(token).toMatch(/^default=[0-9A-F]+\/[0-9A-F]+$/);
    expect(parseLsn(token!.slice('default='.length))! > before).toBe(true);
    await t.expectClean();
  });

  it('a StreamableFile of a buffer after a write carries the token of its commit', async () => {
    const tag = `buf${fastify ? 'f' : 'e'}`;
    const response = await t
      .http()
      .post(`/st/buffer/${tag}`)
      .buffer(true)
      .parse((res, done) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => done(null, text));
      });
    expect(response.status).toBe(201);
    expect(response.body).toBe(`${tag}\n`);
    expect(await onPrimary(tag)).toBe(1);
    expect(response.headers[HEADER]).toMatch(/^default=/);
    await t.expectClean();
  });
});
