import { afterEach, describe, expect, it } from '@jest/globals';
import { CapturingLogger } from '../logging/logging-app.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { startTagApp } from './log-tags-app.js';

/** A logger whose `error()` throws (a transport that is down). */
class ThrowingErrorLogger extends CapturingLogger {
  override error(...parts: unknown[]): void {
    super.error(...parts);
    throw new Error('the logger is down');
  }
}

/**
 * Review attack: docs/logging.md says the module logs "errors that must not change an outcome
 * (a failing afterCommit callback ...)" and "A logger that throws never fails the request it
 * logs about". A failing afterCommit callback logged through a logger whose error() throws.
 */
describe.each(engines)('a logger that throws, review ($name)', (engine) => {
  let app: TestApp | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('a failing afterCommit logged by a throwing logger leaves the committed request a 200', async () => {
    const logger = new ThrowingErrorLogger();
    app = await startTagApp(engine, logger);
    const response = await app.http().get('/callback');
    // The row committed before the callback ran: the request succeeded.
    expect(await app.texts()).toEqual(['handler']);
    expect(logger.messages(/afterCommit callback failed/)).toHaveLength(1);
    expect(response.status).toBe(200);
  });
});
