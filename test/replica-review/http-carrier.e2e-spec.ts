import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  HttpException,
  Injectable,
  Param,
  Post,
  Res,
  UseGuards,
} from '@nestjs/common';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { pair, pauseReplay, resumeReplay } from '../replicas/replica-app.js';
import { ReplicaItem, where } from '../replicas/replica-item.js';
import { createR22App, positionIn, type R22App, rowsOn } from './r22-app.js';

const HEADER = 'x-consistency-token';
const COOKIE = 'ct';

/** What the guard saw: where its read-only read ran and how many rows it counted. */
const guardSaw: Array<{ replica: boolean; seen: number }> = [];

@Injectable()
class ReadingGuard implements CanActivate {
  constructor(private readonly factory: SessionFactory) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const text = (context.switchToHttp().getRequest() as { params?: { text?: string } }).params
      ?.text;
    guardSaw.push(
      await this.factory.atomic(
        async (manager) => ({
          replica: (await where(manager)).replica,
          seen: await manager.countBy(ReplicaItem, { text: text ?? '' }),
        }),
        { readOnly: true },
      ),
    );
    return true;
  }
}

@Controller('h')
class CarrierController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  /** Writes, commits midway, then fails with a 409. */
  @Post('write-then-409/:text')
  async writeThen409(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    throw new HttpException('conflict after a commit', 409);
  }

  /** Writes, and sets a cookie of its own on the response. */
  @Post('write-with-cookie/:text')
  async writeWithCookie(
    @Param('text') text: string,
    @Res({ passthrough: true })
    res: { cookie?: (n: string, v: string) => void; header?: (n: string, v: string) => void },
  ) {
    await this.context.session().insert(ReplicaItem, { text });
    if (typeof res.cookie === 'function') res.cookie('other', 'value');
    else res.header!('set-cookie', 'other=value; Path=/');
    return {};
  }

  @Get('read/:text')
  read(@Param('text') text: string) {
    return this.factory.atomic(
      async (manager) => ({
        ...(await where(manager)),
        seen: await manager.countBy(ReplicaItem, { text }),
      }),
      { readOnly: true },
    );
  }

  @Get('guarded/:text')
  @UseGuards(ReadingGuard)
  guarded() {
    return {};
  }
}

function setCookies(headers: Record<string, unknown>): string[] {
  const value = headers['set-cookie'];
  return value === undefined ? [] : Array.isArray(value) ? value : [String(value)];
}

function cookieValue(headers: Record<string, unknown>, name: string): string | undefined {
  for (const line of setCookies(headers)) {
    const first = line.split(';')[0]!;
    const at = first.indexOf('=');
    if (first.slice(0, at).trim() === name) return first.slice(at + 1);
  }
  return undefined;
}

describe.each([
  ['Express', false],
  ['Fastify', true],
])('Replica review: consistency tokens over HTTP on %s', (_name, fastify) => {
  let r: R22App;

  beforeAll(async () => {
    r = await createR22App({
      fastify,
      context: { consistency: { header: 'X-Consistency-Token', cookie: COOKIE } },
      controllers: [CarrierController],
      providers: [ReadingGuard],
    });
  });
  afterAll(async () => {
    await resumeReplay();
    await r.close();
  });
  afterEach(async () => {
    await resumeReplay();
    await r.replayed();
    await r.expectClean();
  });

  /** Writes `text` with the standby's replay paused; returns the response. */
  async function pausedWrite(route: string, text: string) {
    await pauseReplay();
    const res = await r.http().post(`/h/${route}/${text}`);
    expect(await rowsOn(pair().primary, text)).toBe(1);
    expect(await rowsOn(pair().replica, text)).toBe(0);
    return res;
  }

  it('a mixed-case header option: the header and the cookie go out, and each is honoured', async () => {
    const res = await pausedWrite('write', `${_name}-mixed`);
    expect(res.status).toBe(201);
    const token = res.headers[HEADER] as string;
    expect(token).toMatch(/^default=/);
    expect(cookieValue(res.headers, COOKIE)).toBe(token);
    expect(setCookies(res.headers)[0]).toMatch(/Path=\/; HttpOnly; SameSite=Lax/);
    const byHeader = await r.http().get(`/h/read/${_name}-mixed`).set(HEADER, token);
    expect(byHeader.body).toMatchObject({ replica: false, seen: 1 });
    const byCookie = await r
      .http()
      .get(`/h/read/${_name}-mixed`)
      .set('Cookie', `a=1;${COOKIE}=${token} ;  b=2`);
    expect(byCookie.body).toMatchObject({ replica: false, seen: 1 });
  });

  it('an error response after a midway commit carries the token', async () => {
    const res = await pausedWrite('write-then-409', `${_name}-409`);
    expect(res.status).toBe(409);
    expect(res.headers[HEADER]).toMatch(/^default=/);
    expect(cookieValue(res.headers, COOKIE)).toBe(res.headers[HEADER]);
  });

  it("the handler's own cookie and the token's cookie both go out", async () => {
    const res = await pausedWrite('write-with-cookie', `${_name}-cookies`);
    expect(res.status).toBe(201);
    expect(cookieValue(res.headers, 'other')).toBe('value');
    expect(cookieValue(res.headers, COOKIE)).toBe(res.headers[HEADER]);
  });

  it("a guard's read honours the request's token", async () => {
    const res = await pausedWrite('write', `${_name}-guard`);
    guardSaw.length = 0;
    await r
      .http()
      .get(`/h/guarded/${_name}-guard`)
      .set(HEADER, res.headers[HEADER] as string)
      .expect(200);
    expect(guardSaw).toEqual([{ replica: false, seen: 1 }]);
  });

  it('a quoted cookie value (RFC 6265 allows DQUOTE around a cookie-value) is honoured', async () => {
    const res = await pausedWrite('write', `${_name}-quoted`);
    const token = res.headers[HEADER] as string;
    const read = await r
      .http()
      .get(`/h/read/${_name}-quoted`)
      .set('Cookie', `${COOKIE}="${token}"`);
    // On the standby, which has not replayed the write: a stale read for the client that wrote.
    expect(read.body).toMatchObject({ seen: 1 });
  });

  it('the header sent twice (a proxy adds the one it saw): the furthest position is honoured', async () => {
    const older = await r.http().post(`/h/write/${_name}-twice-a`);
    const res = await pausedWrite('write', `${_name}-twice`);
    const token = res.headers[HEADER] as string;
    expect(positionIn(token)).toBeGreaterThan(positionIn(older.headers[HEADER] as string));
    const read = await r
      .http()
      .get(`/h/read/${_name}-twice`)
      .set(HEADER, [older.headers[HEADER] as string, token]);
    expect(read.body).toMatchObject({ seen: 1 });
  });

  it('a junk header and a junk cookie are ignored (the read runs, on the replica)', async () => {
    await r.replayed();
    for (const junk of [
      '',
      'x',
      'default=',
      'default=ZZ/1',
      '=0/1',
      '%E0%A4%A=0/1',
      'a'.repeat(5000),
    ]) {
      const read = await r
        .http()
        .get(`/h/read/none`)
        .set(HEADER, junk)
        .set('Cookie', `${COOKIE}=${junk}`);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ replica: true, seen: 0 });
    }
  });
});
