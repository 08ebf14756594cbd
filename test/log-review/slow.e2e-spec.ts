import { afterEach, describe, expect, it } from '@jest/globals';
import { CapturingLogger } from '../logging/logging-app.js';
import { eventually, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { attempts, SlowService, startSlowApp } from './slow-app.js';

const requestId = (req: { headers: Record<string, string | undefined> }) =>
  req.headers['x-request-id'];

/**
 * Review attacks on `slowTransactionMs` (docs/logging.md). `0` logs every transaction a block
 * began and every unit: the lines are checked without any timing.
 */
describe.each(engines)('slowTransactionMs, review ($name)', (engine) => {
  const apps: TestApp[] = [];

  afterEach(async () => {
    while (apps.length > 0) await apps.pop()!.close();
    attempts.count = 0;
  });

  const slowLines = (logger: CapturingLogger) =>
    logger
      .messages(/Slow (transaction|unit of work)/)
      .map((line) => line.replace(/after \d+ ms/, 'after N ms'));

  it('a REQUIRES_NEW block and a unit: one line each, both tagged with the request; a savepoint none', async () => {
    const logger = new CapturingLogger();
    const app = await startSlowApp(engine, logger, { slowTransactionMs: 0, requestId });
    apps.push(app);
    const response = await app.http().get('/mixed').set('x-request-id', 'mixed-1').expect(200);
    const unit = (response.body as { unit: number }).unit;
    await eventually(() => slowLines(logger).length === 2);
    expect(await app.texts()).toEqual(['nested', 'own', 'unit']);
    expect(slowLines(logger)).toEqual([
      `[unit ${unit} req mixed-1] Slow transaction: SlowService.own() on 'default' committed after N ms, attempt 1 (slowTransactionMs: 0).`,
      `[unit ${unit} req mixed-1] Slow unit of work: http SlowController.mixed() committed after N ms from its first session to its end (slowTransactionMs: 0).`,
    ]);
  });

  it('a failed unit says rolled back', async () => {
    const logger = new CapturingLogger();
    const app = await startSlowApp(engine, logger, { slowTransactionMs: 0 });
    apps.push(app);
    await app.http().get('/fails').expect(500);
    await eventually(() => slowLines(logger).length === 1);
    expect(await app.rows()).toBe(0);
    expect(slowLines(logger)).toEqual([
      expect.stringMatching(
        /^\[unit \d+\] Slow unit of work: http SlowController\.fails\(\) rolled back after N ms/,
      ),
    ]);
  });

  it('a retried block outside any unit: one line per attempt, each with its own unit id', async () => {
    const logger = new CapturingLogger();
    const app = await startSlowApp(engine, logger, { slowTransactionMs: 0 });
    apps.push(app);
    const unit = await app.app.get(SlowService).retried();
    expect(await app.texts()).toEqual(['attempt 2']);
    const lines = slowLines(logger);
    expect(lines).toEqual([
      expect.stringMatching(
        /^\[unit \d+\] Slow transaction: SlowService\.retried\(\) on 'default' rolled back \(error\) after N ms, attempt 1 /,
      ),
      `[unit ${unit}] Slow transaction: SlowService.retried() on 'default' committed after N ms, attempt 2 (slowTransactionMs: 0).`,
    ]);
    expect(lines[0]).not.toContain(`[unit ${unit}]`);
    // The retry line is logged outside the attempts' units: no tag.
    const retry = logger.lines.filter(
      (line) => line.context === 'TypeOrmContext' && /Retrying transaction/.test(line.message),
    );
    expect(retry).toHaveLength(1);
    for (const line of retry) expect(line.message).not.toMatch(/^\[unit/);
  });

  it('two apps in one process each log only their own units', async () => {
    const logger = new CapturingLogger();
    const a = await startSlowApp(engine, logger, { slowTransactionMs: 0 });
    apps.push(a);
    const b = await startSlowApp(engine, logger, { slowTransactionMs: 0 });
    apps.push(b);
    await a.http().get('/fails').expect(500);
    await b.http().get('/fails').expect(500);
    await eventually(() => slowLines(logger).length >= 2);
    const lines = slowLines(logger).filter((line) => line.includes('Slow unit of work'));
    expect(lines).toHaveLength(2);
    expect(new Set(lines.map((line) => /^\[unit (\d+)\]/.exec(line)?.[1])).size).toBe(2);
  });

  it('after app.close() its log is off; a second app started after logs its own', async () => {
    const logger = new CapturingLogger();
    const first = await startSlowApp(engine, logger, { slowTransactionMs: 0 });
    await first.close();
    const second = await startSlowApp(engine, logger, { slowTransactionMs: 0 });
    apps.push(second);
    await second.http().get('/fails').expect(500);
    await eventually(() => slowLines(logger).length >= 1);
    expect(slowLines(logger)).toHaveLength(1);
  });
});
