import { NoSessionContextError, SessionContext, SessionFactory } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { CapturingLogger, startLoggingApp, UsersService } from './logging-app.js';

/** `[unit 12 req abc] ` at the start of a line: the unit id and request id it names, if any. */
const tagOf = (line: string) => /^\[unit (\d+)(?: req (\S+))?\] /.exec(line)?.slice(1, 3);

describe.each(engines)('Unit and request ids in the log lines ($name)', (engine) => {
  let t: TestApp;
  let logger: CapturingLogger;

  beforeAll(async () => {
    logger = new CapturingLogger();
    t = await startLoggingApp(engine, logger, {
      requestId: (request: { headers: Record<string, string | undefined> }) =>
        request.headers['x-request-id'],
    });
  });
  beforeEach(() => {
    logger.lines.length = 0;
  });
  afterEach(async () => {
    await t.dataSource.query('DELETE FROM example');
    await t.expectClean();
  });
  afterAll(() => t.close());

  it("a warning inside a request carries the request's unit id and the app's request id", async () => {
    const response = await t.http().get('/plain').set('x-request-id', 'abc-1').expect(200);
    const [warning, ...more] = logger.messages(/Plain TypeORM code/);
    expect(more).toEqual([]);
    expect(tagOf(warning!)).toEqual([String(response.body.unit), 'abc-1']);
  });

  it('two concurrent requests: different unit ids, each line tagged with its own', async () => {
    const [first, second] = await Promise.all([
      t.http().get('/callback').set('x-request-id', 'first').expect(200),
      t.http().get('/callback').set('x-request-id', 'second').expect(200),
    ]);
    expect(first!.body.unit).not.toEqual(second!.body.unit);
    const lines = logger.messages(/afterCommit callback failed/);
    expect(lines.map(tagOf).sort()).toEqual(
      [
        [String(first!.body.unit), 'first'],
        [String(second!.body.unit), 'second'],
      ].sort(),
    );
    expect(await t.texts()).toEqual(['first', 'second']); // the callbacks failed after the commits
  });

  it("runInNewContext() in a request: a unit id of its own, the request's id; a REQUIRES_NEW block has its unit's id", async () => {
    const response = await t
      .http()
      .get('/inner-context')
      .set('x-request-id', 'outer-7')
      .expect(200);
    const { unit, inner, block } = response.body as Record<string, number>;
    expect(inner).not.toEqual(unit);
    expect(block).toEqual(unit);
    expect(logger.messages(/afterCommit callback failed/).map(tagOf)).toEqual([
      [String(inner), 'outer-7'],
    ]);
  });

  it('runInNewContext() outside any request: its unit id, no request id', async () => {
    const factory = t.app.get(SessionFactory);
    const users = t.app.get(UsersService);
    const context = t.app.get(SessionContext);
    const ids = await factory.runInNewContext(async () => {
      await users.failingCallback('job');
      return context.unitId();
    });
    expect(logger.messages(/afterCommit callback failed/).map(tagOf)).toEqual([
      [String(ids), undefined],
    ]);
  });

  it('requests without a request id: the unit id only', async () => {
    const answers = await Promise.all([
      t.http().get('/callback').expect(200),
      t.http().get('/callback').expect(200),
    ]);
    expect(
      logger
        .messages(/afterCommit callback failed/)
        .map(tagOf)
        .sort(),
    ).toEqual(answers.map((answer) => [String(answer.body.unit), undefined]).sort());
  });

  it('unitId() outside any unit of work throws NoSessionContextError, saying what to do', () => {
    const context = t.app.get(SessionContext);
    expect(() => context.unitId()).toThrow(NoSessionContextError);
    expect(() => context.unitId()).toThrow(/outside a request, job or runInNewContext\(\)/);
  });

  it('unit ids are unique across units: consecutive units never share one', async () => {
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    const ids = new Set<number>();
    for (let i = 0; i < 5; i++) ids.add(await factory.runInNewContext(() => context.unitId()));
    expect(ids.size).toBe(5);
  });
});

describe.each(engines)('The requestId option ($name)', (engine) => {
  let t: TestApp | undefined;
  let logger: CapturingLogger;

  beforeEach(() => {
    logger = new CapturingLogger();
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  /** Two overlapping requests to `/callback`; the tags of their callback error lines. */
  const twoRequests = async () => {
    const answers = await Promise.all([
      t!.http().get('/callback').set('x-request-id', 'one').expect(200),
      t!.http().get('/callback').set('x-request-id', 'two').expect(200),
    ]);
    const tags = logger.messages(/afterCommit callback failed/).map(tagOf);
    return { units: answers.map((answer) => String(answer.body.unit)), tags };
  };

  it("by default, the request's own id (req.id, as pino-http and Fastify set it)", async () => {
    let count = 0;
    t = await startLoggingApp(engine, logger, {}, (app) =>
      app.use((request: { id?: string }, _response: unknown, next: () => void) => {
        request.id = `pino-${++count}`;
        next();
      }),
    );
    const { units, tags } = await twoRequests();
    expect(tags.map((tag) => tag![0]).sort()).toEqual([...units].sort());
    expect(tags.map((tag) => tag![1]).sort()).toEqual(['pino-1', 'pino-2']);
  });

  it("by default on Fastify, Fastify's own request id", async () => {
    t = await startLoggingApp(engine, logger, {}, undefined, true);
    const { units, tags } = await twoRequests();
    expect(tags.map((tag) => tag![0]).sort()).toEqual([...units].sort());
    // Fastify's default ids: req-1, req-2, … (one per request this app served).
    expect(tags.map((tag) => tag![1]).sort()).toEqual([
      expect.stringMatching(/^req-\w+$/),
      expect.stringMatching(/^req-\w+$/),
    ]);
    expect(new Set(tags.map((tag) => tag![1])).size).toBe(2);
  });

  it('requestId: false: no request ids', async () => {
    t = await startLoggingApp(engine, logger, { requestId: false }, (app) =>
      app.use((request: { id?: string }, _response: unknown, next: () => void) => {
        request.id = 'never-shown';
        next();
      }),
    );
    const { units, tags } = await twoRequests();
    expect(tags.sort()).toEqual(units.map((unit) => [unit, undefined]).sort());
  });

  it('a requestId function that throws: the line is logged with the unit id only', async () => {
    t = await startLoggingApp(engine, logger, {
      requestId: () => {
        throw new Error('no id today');
      },
    });
    const { units, tags } = await twoRequests();
    expect(tags.sort()).toEqual(units.map((unit) => [unit, undefined]).sort());
    expect(await t.texts()).toEqual(['one', 'two']);
  });
});
