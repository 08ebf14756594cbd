import { tracingChannel } from 'node:diagnostics_channel';
import { SessionFactory, TRANSACTION_CHANNEL, UNIT_CHANNEL } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { CapturingLogger, startLoggingApp, UsersService } from './logging-app.js';

const transactions = tracingChannel(TRANSACTION_CHANNEL);
const units = tracingChannel(UNIT_CHANNEL);
/** Whether anything in the process listens on the module's unit or transaction channel. */
const listened = () => transactions.hasSubscribers || units.hasSubscribers;

/** Slower than this (ms) is slow; the slow blocks sleep 1.2 s, the fast ones only insert a row. */
const THRESHOLD = 1000;

describe.each(engines)('slowTransactionMs ($name)', (engine) => {
  let t: TestApp;
  let logger: CapturingLogger;

  beforeAll(async () => {
    expect(listened()).toBe(false);
    logger = new CapturingLogger();
    t = await startLoggingApp(engine, logger, {
      slowTransactionMs: THRESHOLD,
      requestId: (request: { headers: Record<string, string | undefined> }) =>
        request.headers['x-request-id'],
    });
  });
  beforeEach(() => {
    logger.lines.length = 0;
    logger.throwOnWarn = undefined;
  });
  afterEach(async () => {
    await t.dataSource.query('DELETE FROM example');
    await t.expectClean();
  });
  afterAll(async () => {
    expect(listened()).toBe(true);
    await t.close();
    // app.close() took the app's subscription away.
    expect(listened()).toBe(false);
  });

  it('a slow REQUIRES_NEW block in a request: its label, outcome, attempt, duration and ids; then the slow unit', async () => {
    const response = await t.http().get('/slow').set('x-request-id', 'slow-1').expect(200);
    const { unit, block } = response.body as Record<string, number>;
    expect(block).toBe(unit);
    const tag = `[unit ${unit} req slow-1]`;
    expect(logger.messages(/Slow/)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^\\[unit ${unit} req slow-1\\] Slow transaction: UsersService\\.slow\\(\\) on 'default' ` +
            `committed after \\d+ ms, attempt 1 \\(slowTransactionMs: ${THRESHOLD}\\)\\.$`,
        ),
      ),
      expect.stringMatching(
        new RegExp(
          `^\\[unit ${unit} req slow-1\\] Slow unit of work: http UsersController\\.slow\\(\\) ` +
            'committed after \\d+ ms from its first session to its end',
        ),
      ),
    ]);
    expect(logger.lines.filter((line) => line.message.startsWith(tag))).toHaveLength(2);
    // The duration is the block's: at least its sleep.
    const ms = Number(/after (\d+) ms/.exec(logger.messages(/Slow transaction/)[0]!)![1]);
    expect(ms).toBeGreaterThanOrEqual(1200);
    expect(await t.texts()).toEqual(['slow']);
  });

  it('a slow block that fails: rolled back, and why', async () => {
    await t.http().get('/slow-fails').set('x-request-id', 'slow-2').expect(200);
    expect(logger.messages(/Slow transaction/)).toEqual([
      expect.stringMatching(
        /^\[unit \d+ req slow-2\] Slow transaction: UsersService\.slow\(\) on 'default' rolled back \(error\) after \d+ ms, attempt 1/,
      ),
    ]);
    expect(await t.rows()).toBe(0);
  });

  it('a fast block and a fast request: nothing logged', async () => {
    await t.http().get('/fast').expect(200);
    expect(logger.messages(/Slow/)).toEqual([]);
    expect(await t.texts()).toEqual(['fast']);
  });

  it("@Transactional() outside any unit: its own unit's id, no request id", async () => {
    const users = t.app.get(UsersService);
    const unit = await users.slow(1.2);
    expect(logger.messages(/Slow/)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^\\[unit ${unit}\\] Slow transaction: UsersService\\.slow\\(\\) on 'default' committed`,
        ),
      ),
    ]);
  });

  it('a slow runInNewContext() unit is logged as a unit of kind context', async () => {
    const factory = t.app.get(SessionFactory);
    await factory.runInNewContext(async () => {
      await t.app.get(UsersService).context.session().query(engine.sleepSql(1.2));
    });
    expect(logger.messages(/Slow/)).toEqual([
      expect.stringMatching(/^\[unit \d+\] Slow unit of work: context committed after \d+ ms/),
    ]);
  });

  it('a logger that throws never breaks the request: it answers and its writes commit', async () => {
    logger.throwOnWarn = new Error('the logger is broken');
    await t.http().get('/slow').expect(200);
    expect(logger.messages(/Slow/)).toHaveLength(2); // both tried, both threw
    expect(await t.texts()).toEqual(['slow']);
  });
});

describe.each(engines)('slowTransactionMs with two apps in one process ($name)', (engine) => {
  it('only the app with the option logs, and only its own transactions', async () => {
    expect(listened()).toBe(false);
    const logger = new CapturingLogger();
    const quiet = await startLoggingApp(engine, logger);
    // An app without the option subscribes to nothing.
    expect(listened()).toBe(false);
    const loud = await startLoggingApp(engine, logger, { slowTransactionMs: THRESHOLD });
    expect(listened()).toBe(true);
    try {
      const [fromQuiet, fromLoud] = await Promise.all([
        quiet.http().get('/slow').expect(200),
        loud.http().get('/slow').expect(200),
      ]);
      const lines = logger.messages(/Slow/);
      expect(lines).toEqual([
        expect.stringMatching(new RegExp(`^\\[unit ${fromLoud.body.unit}\\] Slow transaction`)),
        expect.stringMatching(new RegExp(`^\\[unit ${fromLoud.body.unit}\\] Slow unit of work`)),
      ]);
      expect(lines.join('\n')).not.toContain(`[unit ${fromQuiet.body.unit}]`);
    } finally {
      await loud.close();
      await quiet.close();
    }
    expect(listened()).toBe(false);
  });
});
