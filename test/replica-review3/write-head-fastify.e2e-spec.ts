/**
 * Round three: the writeHead() hook under Fastify (FastifyAdapter hands writeHead() its reply's
 * headers object). Tokens are checked against the primary's WAL, rows on the primary.
 */
import { Controller, Get, Param, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { SessionContext } from '../../src/index.js';
import { parseLsn } from '../../src/session/wal-position.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import {
  createReviewApp,
  HEADER,
  onPrimary,
  primaryLsn,
  type ReviewApp,
} from '../replica-review2/review-app.js';

const COOKIE = 'ct';

@Controller('fh')
class FastifyHeadController {
  constructor(private readonly context: SessionContext) {}

  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  /** @Res(): commits, sets its own cookie on the reply, sends. */
  @Post('res/:text')
  async viaRes(@Param('text') text: string, @Res() reply: FastifyReply): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    void reply.header('set-cookie', 'app=1; Path=/').status(200).send({ ok: true });
  }

  @Get('nothing')
  nothing(): object {
    return {};
  }
}

const tokenCookies = (lines: string[] | undefined) =>
  (lines ?? []).filter((line) => line.startsWith(`${COOKIE}=`));

async function checkToken(token: unknown): Promise<void> {
  expect(token).toEqual(expect.stringMatching(/^default=[0-9A-F]+\/[0-9A-F]+$/));
  expect(parseLsn(String(token).split('=')[1])!).toBeLessThanOrEqual(parseLsn(await primaryLsn())!);
}

describe('Replica review 3: the token on writeHead() (Fastify)', () => {
  let t: ReviewApp;
  beforeAll(async () => {
    t = await createReviewApp({
      fastify: true,
      context: { consistency: { header: HEADER, cookie: COOKIE } },
      controllers: [FastifyHeadController],
    });
  });
  afterAll(() => t.close());

  it('the interceptor and the hook send the header and the cookie once', async () => {
    const res = await t.http().post('/fh/write/fy-1').expect(201);
    expect(await onPrimary('fy-1')).toBe(1);
    await checkToken(res.headers[HEADER]);
    expect(tokenCookies(res.headers['set-cookie'] as unknown as string[])).toEqual([
      `${COOKIE}=${res.headers[HEADER]}; Path=/; HttpOnly; SameSite=Lax`,
    ]);
    const next = await t.http().get('/fh/nothing').expect(200);
    expect(next.headers[HEADER]).toBeUndefined();
    expect(tokenCookies(next.headers['set-cookie'] as unknown as string[])).toEqual([]);
  });

  it("@Res() with the app's own cookie on the reply: both cookies, one token", async () => {
    const res = await t.http().post('/fh/res/fy-2').expect(200);
    expect(await onPrimary('fy-2')).toBe(1);
    await checkToken(res.headers[HEADER]);
    const cookies = res.headers['set-cookie'] as unknown as string[];
    expect(cookies).toContain('app=1; Path=/');
    expect(tokenCookies(cookies)).toHaveLength(1);
  });
});
