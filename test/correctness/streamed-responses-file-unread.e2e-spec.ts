import { Readable } from 'node:stream';
import { Controller, Get, StreamableFile } from '@nestjs/common';
import { SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, listen } from './streamed-responses-support.js';

const probe: { engine?: Engine; refuse: boolean } = { refuse: false };

@Controller('unread')
class UnreadStreamController {
  constructor(private readonly context: SessionContext) {}

  /**
   * Writes, opens a database stream it never reads (it changed its mind), and returns a file
   * that has nothing to do with the database.
   */
  @Get('file')
  async file() {
    const session = this.context.session();
    await session.insert(Example, { text: 'written' });
    await session.queryRunner!.stream(
      probe.engine!.name === 'postgres'
        ? 'SELECT g FROM generate_series(1, 1000) g'
        : 'SELECT seq FROM seq_1_to_1000',
    );
    return new StreamableFile(Readable.from(['not,from,the,database\n']));
  }

  /** The same without the forgotten stream. */
  @Get('plain-file')
  async plainFile() {
    await this.context.session().insert(Example, { text: 'written' });
    return new StreamableFile(Readable.from(['not,from,the,database\n']));
  }
}

const cases = engines.flatMap((engine) =>
  (['express', 'fastify'] as const).map((platform) => ({ engine, platform })),
);

describe.each(cases)(
  'streamed responses: a StreamableFile not reading the unread database stream of its unit ($engine.name, $platform)',
  ({ engine, platform }) => {
    let t: TestApp;

    beforeAll(async () => {
      probe.engine = engine;
      ({ t } = await listen(engine, {
        controllers: [UnreadStreamController],
        platform,
        context: {
          beforeCommit: () => {
            if (probe.refuse) throw new Error('the commit is refused');
          },
        },
      }));
    });
    beforeEach(async () => {
      probe.engine = engine;
      probe.refuse = true;
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => expectReleased(engine, t.dataSource));
    afterAll(() => closeApp(t, engine));

    // Held (the baseline): without an open database stream the commit comes before the response,
    // so a commit that fails is an error response.
    it('a file not reading the database: a failed commit is an error response', async () => {
      const response = await t.http().get('/unread/plain-file');
      expect(response.status).toBe(500);
      expect(await t.rows()).toBe(0);
    });

    // Expected: the file does not read the database stream, so nothing needs the transaction
    // after the handler returned: "commit before the response" applies (docs/auto-commit.md; an
    // unread stream is destroyed when its context ends, and the context commits). A commit that
    // fails is then an error response. Before the fix: because a database stream of the unit is open,
    // the interceptor sends the file first and commits after it was sent: the client got 200
    // and the whole body, and the write was rolled back behind its back.
    it('a database stream left unread does not turn the file into send-then-commit: a failed commit is an error response', async () => {
      const response = await t.http().get('/unread/file');
      expect(await t.rows()).toBe(0);
      expect(response.status).toBe(500);
    });
  },
);
