import { afterEach, describe, expect, it } from '@jest/globals';
import { CapturingLogger } from '../logging/logging-app.js';
import { eventually, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { startTagApp } from './log-tags-app.js';

type Req = { headers: Record<string, string | undefined> };

/**
 * Review attack (docs/logging.md, `requestId`): two apps in one process, each with its own
 * `requestId` function (B's `false`): each request's line carries its own app's reading.
 */
describe.each(engines)('two apps with their own requestId, review ($name)', (engine) => {
  const apps: TestApp[] = [];

  afterEach(async () => {
    while (apps.length > 0) await apps.pop()!.close();
  });

  it("app A's and app B's lines each read the request id their own way", async () => {
    const logger = new CapturingLogger();
    const a = await startTagApp(engine, logger, {
      requestId: (req: Req) => `A-${req.headers['x-request-id']}`,
    });
    apps.push(a);
    const b = await startTagApp(engine, logger, { requestId: false });
    apps.push(b);
    const c = await startTagApp(engine, logger, {
      requestId: (req: Req) => `C-${req.headers['x-request-id']}`,
    });
    apps.push(c);
    const units = await Promise.all(
      [a, b, c].map(async (app) => {
        const response = await app.http().get('/callback').set('x-request-id', 'r1').expect(200);
        return (response.body as { unit: number }).unit;
      }),
    );
    await eventually(() => logger.messages(/afterCommit callback failed/).length === 3);
    expect(logger.messages(/afterCommit callback failed/).sort()).toEqual(
      [
        `[unit ${units[0]} req A-r1] afterCommit callback failed`,
        `[unit ${units[1]}] afterCommit callback failed`,
        `[unit ${units[2]} req C-r1] afterCommit callback failed`,
      ].sort(),
    );
  });
});
