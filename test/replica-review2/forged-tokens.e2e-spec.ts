/**
 * Round two: tokens a client (or a gateway) makes up or accumulates: CR/LF in a name echoed back,
 * and a token that names many data sources (the documented gateway case: each service carries
 * every position its unit knew). Checked against the primary's rows and the read's server.
 */
import { Controller, Get, Param, Post } from '@nestjs/common';
import { connect } from 'node:net';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { pauseReplay, resumeReplay } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { createReviewApp, HEADER, onPrimary, type ReviewApp, seen } from './review-app.js';

@Controller('f')
class ForgedController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  @Get('read/:text')
  read(@Param('text') text: string) {
    return this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
  }
}

/** Sends a raw HTTP request and resolves with the raw response head. */
function rawHead(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(text.slice(0, end));
      }
    });
    socket.on('error', reject);
  });
}

describe.each([false, true])('Replica review 2: forged and large tokens (fastify: %s)', (fastify) => {
  let t: ReviewApp;
  beforeAll(async () => {
    t = await createReviewApp({
      fastify,
      context: { consistency: { header: HEADER, cookie: 'ctok' } },
      controllers: [ForgedController],
    });
    await t.app.listen(0, '127.0.0.1');
  });
  afterEach(() => resumeReplay());
  afterAll(() => t.close());

  const port = () => (t.app.getHttpServer().address() as { port: number }).port;

  it('a name with encoded CR/LF is echoed encoded: no header is injected, the response head is well-formed', async () => {
    const forged = `${encodeURIComponent('x\r\nSet-Cookie: evil=1\r\nX-Injected: 1')}=0/10`;
    const head = await rawHead(
      port(),
      `POST /f/write/crlf${fastify ? 'f' : 'e'} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n` +
        `${HEADER}: ${forged}\r\nConnection: close\r\n\r\n`,
    );
    expect(head).toMatch(/^HTTP\/1\.1 201/);
    expect(await onPrimary(`crlf${fastify ? 'f' : 'e'}`)).toBe(1);
    const lines = head.split('\r\n');
    expect(lines.filter((line) => /^x-injected/i.test(line))).toEqual([]);
    expect(lines.filter((line) => /^set-cookie: evil/i.test(line))).toEqual([]);
    const token = lines.find((line) => line.toLowerCase().startsWith(`${HEADER}:`));
    expect(token).toMatch(/default=[0-9A-F]+\/[0-9A-F]+/);
    expect(token).toContain('x%0D%0ASet-Cookie');
    await t.expectClean();
  });

  it('a token the app itself sent back is honoured on the next request, also when it carries many data sources (a gateway)', async () => {
    // What a gateway forwards: the positions of other services' data sources (documented), in
    // a token the library accepts (under its 4096-character bound).
    const foreign: string[] = [];
    while (foreign.join('&').length < 4070) {
      foreign.push(`reporting-${String(foreign.length).padStart(3, '0')}=1/0`);
    }
    // Padded to 4096 characters exactly: the longest token the library accepts.
    const pad = 4096 - foreign.join('&').length - '&pad=1/0'.length;
    foreign.push(`${'p'.repeat(3 + pad)}=1/0`);
    const carried = foreign.join('&');
    expect(carried.length).toBe(4096);
    const tag = `many${fastify ? 'f' : 'e'}`;
    await pauseReplay();
    const write = await t.http().post(`/f/write/${tag}`).set(HEADER, carried).expect(201);
    expect(await onPrimary(tag)).toBe(1);
    const token = write.headers[HEADER] as string;
    expect(token).toContain('default=');
    // The client sends back exactly what it got: the read must see the write (the primary, as
    // the standby's replay is paused), not the paused standby's old state.
    const read = await t.http().get(`/f/read/${tag}`).set(HEADER, token).expect(200);
    expect({ tokenLength: token.length, read: read.body }).toEqual({
      tokenLength: token.length,
      read: expect.objectContaining({ replica: false, seen: 1 }),
    });
    await t.expectClean();
  });
});
