import { afterEach, describe, expect, it } from '@jest/globals';
import { CapturingLogger } from '../logging/logging-app.js';
import { eventually, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { seen, startTagApp, TagService } from './log-tags-app.js';

const requestId = (req: { headers: Record<string, string | undefined> }) =>
  req.headers['x-request-id'];

/**
 * Review attacks on docs/logging.md: "Lines of afterCommit / afterRollback / afterCompletion
 * callbacks carry the id of the unit whose transaction they follow."
 */
describe.each(engines)('log tags of callbacks, review ($name)', (engine) => {
  let app: TestApp | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
    seen.clear();
  });

  it.each([false, true])(
    'a failing afterRollback of a request a guard refused carries the unit and request ids (fastify: %s)',
    async (fastify) => {
      const logger = new CapturingLogger();
      app = await startTagApp(engine, logger, { requestId }, fastify);
      await app.http().get('/guarded').set('x-request-id', 'guard-req').expect(403);
      await eventually(() => logger.messages(/afterRollback callback failed/).length === 1);
      // The guard's row rolled back with the unit.
      expect(await app.rows()).toBe(0);
      const unit = seen.get('guard');
      expect(seen.get('guard callback')).toBe(unit);
      expect(logger.messages(/afterRollback callback failed/)).toEqual([
        `[unit ${unit} req guard-req] afterRollback callback failed`,
      ]);
      await app.expectClean();
    },
  );

  it('a failing afterCommit of @Transactional() outside any unit carries that unit id', async () => {
    const logger = new CapturingLogger();
    app = await startTagApp(engine, logger, { requestId });
    const unit = await app.app.get(TagService).ownTransaction('outside');
    expect(await app.texts()).toEqual(['outside']);
    expect(seen.get('outside callback')).toBe(unit);
    expect(logger.messages(/afterCommit callback failed/)).toEqual([
      `[unit ${unit}] afterCommit callback failed`,
    ]);
  });

  it('a failing afterCommit of a request carries the unit and request ids', async () => {
    const logger = new CapturingLogger();
    app = await startTagApp(engine, logger, { requestId });
    const response = await app.http().get('/callback').set('x-request-id', 'cb-req').expect(200);
    const unit = (response.body as { unit: number }).unit;
    await eventually(() => logger.messages(/afterCommit callback failed/).length === 1);
    expect(await app.texts()).toEqual(['handler']);
    expect(logger.messages(/afterCommit callback failed/)).toEqual([
      `[unit ${unit} req cb-req] afterCommit callback failed`,
    ]);
  });
});
