import type { Readable } from 'node:stream';
import { Controller, Get, StreamableFile } from '@nestjs/common';
import { Propagation, SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, listen } from './streamed-responses-support.js';

const probe: { engine?: Engine; unhandled: unknown[] } = { unhandled: [] };

/** Rows whose first one fails on the server. */
function failingFirstRowSql(engine: Engine): string {
  return engine.name === 'postgres'
    ? 'SELECT g, 1 / (1 - g) AS v FROM generate_series(1, 3000) g'
    : 'SELECT seq, IF(seq = 1, (SELECT 1 UNION ALL SELECT 2), seq) AS v FROM seq_1_to_3000';
}

/**
 * Records an 'error' emitted on `body` while nobody listens for it (which would throw, i.e.
 * crash the process, outside Jest) instead of letting it throw here and kill the whole suite.
 */
function watchUnhandled<T extends Readable>(body: T): T {
  const emit = body.emit.bind(body);
  body.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === 'error' && body.listenerCount('error') === 0) {
      probe.unhandled.push(args[0]);
      return false;
    }
    return emit(event, ...args);
  }) as T['emit'];
  return body;
}

@Controller('file')
class FileController {
  constructor(private readonly context: SessionContext) {}

  /**
   * Writes, then tries a database export inside a NESTED block: it fails at its first row, the
   * block rolls back to its savepoint and the handler falls back to a small in-memory file.
   */
  @Get('fallback')
  async fallback() {
    await this.context.session().insert(Example, { text: 'kept' });
    await this.context
      .atomic(
        async (manager) => {
          const rows = await manager.queryRunner!.stream(failingFirstRowSql(probe.engine!));
          await new Promise<void>((resolve, reject) =>
            rows
              .once('error', reject)
              .once('end', () => resolve())
              .resume(),
          );
        },
        { propagation: Propagation.NESTED },
      )
      .catch(() => undefined); // handled: the savepoint rolled back, the transaction goes on
    const file = new StreamableFile(Buffer.from('fallback\n'));
    watchUnhandled(file.getStream());
    return file;
  }
}

const cases = engines.flatMap((engine) =>
  (['express', 'fastify'] as const).map((platform) => ({ engine, platform })),
);

describe.each(cases)(
  'streamed responses: StreamableFile and failed database streams ($engine.name, $platform)',
  ({ engine, platform }) => {
    let t: TestApp;

    beforeAll(async () => {
      probe.engine = engine;
      ({ t } = await listen(engine, { controllers: [FileController], platform }));
    });
    beforeEach(async () => {
      probe.engine = engine;
      probe.unhandled = [];
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => expectReleased(engine, t.dataSource));
    afterAll(() => closeApp(t, engine));

    // Expected: a database stream whose failure the handler caught (and whose savepoint it rolled
    // back) is over; a StreamableFile that does not read it is sent like any response: 200 with
    // its body, and the handler's write committed (as the same handler returning JSON does).
    // Before the fix: the unit remembers the old stream failure (LazySession.streamFailure is never
    // cleared) and the interceptor answers 500 and rolls back 'kept'.
    it('a database stream that failed and was handled earlier does not fail an unrelated StreamableFile', async () => {
      const response = await t.http().get('/file/fallback');
      expect(response.status).toBe(200);
      expect(await t.texts()).toEqual(['kept']);
    });

    // Expected: whatever the status, the interceptor emits no 'error' nobody listens for.
    // Before the fix: it destroys the in-memory file's stream (a Buffer StreamableFile: Nest attaches no
    // error listener to it) with the old database error, before Nest got the file: an unhandled
    // 'error' event, i.e. outside a test an uncaught exception that brings the process down.
    it('the fallback file is not destroyed with an error nobody listens for', async () => {
      await t.http().get('/file/fallback');
      expect(probe.unhandled.map(String)).toEqual([]);
    });
  },
);
