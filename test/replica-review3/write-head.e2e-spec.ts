/**
 * Round three: the writeHead() hook that sends the consistency token with the response's
 * headers, whoever writes them (Express). Every token asserted is checked against the primary:
 * its position is one the primary's WAL reached, and the row its request wrote is there.
 */
import {
  type CallHandler,
  Controller,
  type ExecutionContext,
  Get,
  HttpCode,
  Injectable,
  type NestInterceptor,
  Param,
  Post,
  Res,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import type { ServerResponse } from 'node:http';
import http from 'node:http';
import { connect } from 'node:net';
import { from, mergeMap } from 'rxjs';
import { SessionContext, SessionFactory } from '../../src/index.js';
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

/** A module-level headers object, as apps keep for their plain answers. */
const PLAIN = { 'content-type': 'text/plain' };
const FROZEN = Object.freeze({ 'content-type': 'text/plain' });

@Controller('h')
class HeadController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  /** Commits, then answers with the app's shared headers object. */
  @Post('shared/:text')
  async sharedWrite(@Param('text') text: string, @Res() res: ServerResponse): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    res.writeHead(200, PLAIN);
    res.end('wrote');
  }

  /** Commits nothing, answers with the same shared headers object. */
  @Get('shared')
  sharedRead(@Res() res: ServerResponse): void {
    res.writeHead(200, PLAIN);
    res.end('read');
  }

  @Get('frozen')
  frozenRead(@Res() res: ServerResponse): void {
    res.writeHead(200, FROZEN);
    res.end('read');
  }

  @Post('frozen/:text')
  async frozen(@Param('text') text: string, @Res() res: ServerResponse): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    res.writeHead(200, FROZEN);
    res.end('wrote');
  }

  /** Node accepts a flat array of names and values: the app sets a cookie of its own there. */
  @Post('array/:text')
  async array(@Param('text') text: string, @Res() res: ServerResponse): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    res.writeHead(200, ['set-cookie', 'app=1; Path=/', 'content-type', 'text/plain']);
    res.end('wrote');
  }

  /** The app's cookie in writeHead()'s object. */
  @Post('object-cookie/:text')
  async objectCookie(@Param('text') text: string, @Res() res: ServerResponse): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    res.writeHead(200, { 'Set-Cookie': 'app=1; Path=/', 'content-type': 'text/plain' });
    res.end('wrote');
  }

  /** The app's cookie set before, the head implicit (res.end()). */
  @Post('set-cookie/:text')
  async setCookie(@Param('text') text: string, @Res() res: ServerResponse): Promise<void> {
    res.setHeader('set-cookie', ['app=1; Path=/']);
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    res.end('wrote');
  }

  /** Through the interceptor, committed by it. */
  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  @Post('empty/:text')
  @HttpCode(204)
  async empty(@Param('text') text: string): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
  }

  /** A GET that writes (a HEAD request runs it too). */
  @Get('get-write/:text')
  async getWrite(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return { fixed: true };
  }

  @Get('nothing')
  nothing(): object {
    return { nothing: true };
  }

  /** The interceptor commits and sends; then an outer interceptor writes an audit row in a new context. */
  @Post('audited/:text')
  async audited(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }
}

/** Registered before the module's interceptor (outer): audits 'audited' routes after they answered. */
@Injectable()
class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly factory: SessionFactory,
    private readonly context: SessionContext,
  ) {}
  intercept(context: ExecutionContext, next: CallHandler) {
    const url = String(context.switchToHttp().getRequest<{ url: string }>().url);
    if (!url.includes('/audited/')) return next.handle();
    return next
      .handle()
      .pipe(
        mergeMap((value: unknown) =>
          from(
            this.factory
              .runInNewContext(() =>
                this.context
                  .session()
                  .insert(ReplicaItem, { text: `audit-${url.split('/').pop()}` }),
              )
              .then(() => value),
          ),
        ),
      );
  }
}

const cookiesOf = (headers: http.IncomingHttpHeaders): string[] => headers['set-cookie'] ?? [];
const tokenCookies = (headers: http.IncomingHttpHeaders) =>
  cookiesOf(headers).filter((line) => line.startsWith(`${COOKIE}=`));
const cookieToken = (line: string) => line.slice(COOKIE.length + 1).split(';')[0]!;

/** The position a token names for the default data source, checked against the primary's WAL. */
async function checkToken(token: string | undefined): Promise<bigint> {
  expect(token).toEqual(expect.stringMatching(/^default=[0-9A-F]+\/[0-9A-F]+$/));
  const position = parseLsn(token!.split('=')[1])!;
  expect(position).toBeLessThanOrEqual(parseLsn(await primaryLsn())!);
  return position;
}

describe('Replica review 3: the token on writeHead() (Express)', () => {
  let t: ReviewApp;
  beforeAll(async () => {
    t = await createReviewApp({
      context: { consistency: { header: HEADER, cookie: COOKIE } },
      controllers: [HeadController],
      providers: [{ provide: APP_INTERCEPTOR, useClass: AuditInterceptor }],
    });
  });
  afterAll(() => t.close());

  it("a headers object the app shares between responses does not carry one request's token into the next", async () => {
    const first = await t.http().post('/h/shared/shared-1').expect(200);
    await checkToken(first.headers[HEADER]);
    expect(await onPrimary('shared-1')).toBe(1);
    // The next request commits nothing: it has no token to send (another client, maybe).
    const second = await t.http().get('/h/shared').expect(200, 'read');
    // (what it got, if anything, is the first request's position)
    if (second.headers[HEADER] !== undefined)
      expect(second.headers[HEADER]).toBe(first.headers[HEADER]);
    expect(second.headers[HEADER]).toBeUndefined();
    expect(tokenCookies(second.headers)).toEqual([]);
    // The app's own object is as it wrote it.
    expect(PLAIN).toEqual({ 'content-type': 'text/plain' });
  });

  it('a frozen headers object still gets its answer (and the token)', async () => {
    // Without a commit to send, Node takes it (it never writes to it).
    await t.http().get('/h/frozen').expect(200, 'read');
    const res = await t.http().post('/h/frozen/frozen-1');
    expect(await onPrimary('frozen-1')).toBe(1);
    expect(res.status).toBe(200);
    expect(res.text).toBe('wrote');
    await checkToken(res.headers[HEADER]);
  });

  it("writeHead(status, flatArray) with the app's own set-cookie keeps both cookies", async () => {
    const res = await t.http().post('/h/array/array-1').expect(200);
    expect(await onPrimary('array-1')).toBe(1);
    await checkToken(res.headers[HEADER]);
    expect(cookiesOf(res.headers)).toContain('app=1; Path=/');
    expect(tokenCookies(res.headers)).toHaveLength(1);
    expect(cookieToken(tokenCookies(res.headers)[0]!)).toBe(res.headers[HEADER]);
  });

  it("the app's cookie given in writeHead()'s object is kept beside the token's", async () => {
    const res = await t.http().post('/h/object-cookie/object-1').expect(200);
    expect(await onPrimary('object-1')).toBe(1);
    await checkToken(res.headers[HEADER]);
    expect(cookiesOf(res.headers)).toContain('app=1; Path=/');
    expect(tokenCookies(res.headers).map(cookieToken)).toEqual([res.headers[HEADER]]);
  });

  it("the app's cookie set before an implicit head (res.end()) is kept beside the token's", async () => {
    const res = await t.http().post('/h/set-cookie/setcookie-1').expect(201);
    expect(await onPrimary('setcookie-1')).toBe(1);
    await checkToken(res.headers[HEADER]);
    expect(cookiesOf(res.headers)).toContain('app=1; Path=/');
    expect(tokenCookies(res.headers).map(cookieToken)).toEqual([res.headers[HEADER]]);
  });

  it("a commit after the interceptor sent its token (an outer interceptor's new context) sends one cookie, the furthest", async () => {
    const res = await t.http().post('/h/audited/aud-1').expect(201);
    expect(await onPrimary('aud-1')).toBe(1);
    expect(await onPrimary('audit-aud-1')).toBe(1);
    const header = await checkToken(res.headers[HEADER]);
    const cookies = tokenCookies(res.headers);
    expect(cookies).toHaveLength(1);
    expect(parseLsn(cookieToken(cookies[0]!).split('=')[1])).toBe(header);
  });

  it('204 and HEAD responses carry the token of what they committed', async () => {
    const empty = await t.http().post('/h/empty/empty-1').expect(204);
    expect(await onPrimary('empty-1')).toBe(1);
    await checkToken(empty.headers[HEADER]);
    const head = await t.http().head('/h/get-write/head-1').expect(200);
    expect(await onPrimary('head-1')).toBe(1);
    await checkToken(head.headers[HEADER]);
  });

  it('a 304 (If-None-Match) still carries the token of what the request committed', async () => {
    const first = await t.http().get('/h/get-write/etag-1').expect(200);
    const etag = first.headers.etag as string;
    expect(etag).toBeDefined();
    const second = await t.http().get('/h/get-write/etag-2').set('if-none-match', etag).expect(304);
    expect(await onPrimary('etag-2')).toBe(1);
    const position = await checkToken(second.headers[HEADER]);
    expect(position).toBeGreaterThan(parseLsn((first.headers[HEADER] as string).split('=')[1])!);
  });

  it("a keep-alive connection's second request does not get the first's token", async () => {
    const address = t.app.getHttpServer().listening
      ? t.app.getHttpServer().address()
      : (await new Promise<void>((resolve) => t.app.getHttpServer().listen(0, resolve)),
        t.app.getHttpServer().address());
    const port = (address as { port: number }).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ask = (method: string, path: string) =>
      new Promise<{ headers: http.IncomingHttpHeaders; local: number }>((resolve, reject) => {
        const req = http.request({ port, method, path, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ headers: res.headers, local: req.socket!.localPort! }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const first = await ask('POST', '/h/write/keep-1');
      const second = await ask('GET', '/h/nothing');
      expect(second.local).toBe(first.local); // the same connection
      expect(await onPrimary('keep-1')).toBe(1);
      await checkToken(first.headers[HEADER] as string);
      expect(second.headers[HEADER]).toBeUndefined();
      expect(tokenCookies(second.headers)).toEqual([]);
    } finally {
      agent.destroy();
    }
  });

  it('pipelined requests each get their own token, or none', async () => {
    const server = t.app.getHttpServer();
    if (!server.listening) await new Promise<void>((resolve) => server.listen(0, resolve));
    const port = (server.address() as { port: number }).port;
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString('latin1');
        if ((text.match(/HTTP\/1\.1 /g) ?? []).length === 3 && text.endsWith('}')) socket.end();
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.write(
        'POST /h/write/pipe-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' +
          'GET /h/nothing HTTP/1.1\r\nHost: x\r\n\r\n' +
          'POST /h/write/pipe-2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
    });
    const responses = raw.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(3);
    const tokenOf = (response: string) =>
      /x-consistency-token: ([^\r]+)/i.exec(response)?.[1] ?? undefined;
    expect(await onPrimary('pipe-1')).toBe(1);
    expect(await onPrimary('pipe-2')).toBe(1);
    const one = await checkToken(tokenOf(responses[0]!));
    expect(tokenOf(responses[1]!)).toBeUndefined();
    const two = await checkToken(tokenOf(responses[2]!));
    expect(two).toBeGreaterThan(one);
  });
});
