import { Controller, Post } from '@nestjs/common';
import { SessionContext } from '../../src/index.js';
import { createTestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';

const closing: { done?: Promise<unknown> } = {};
let current: Engine;

@Controller()
class ClosingController {
  constructor(private readonly context: SessionContext) {}

  /** Leaves a close in progress (waiting behind a running query) when the request ends. */
  @Post('close-in-flight')
  async closeInFlight() {
    const session = this.context.session();
    await session.query('SELECT 1');
    const sleeping = session.query(current.sleepSql(0.3)).catch(() => undefined);
    closing.done = Promise.all([sleeping, this.context.close()]);
    return 'ok';
  }
}

describe.each(engines)('application shutdown ($name)', (engine) => {
  it('app.close() while a session is still closing waits for it instead of spinning', async () => {
    current = engine;
    const t = await createTestApp(engine, { controllers: [ClosingController] });
    await t.http().post('/close-in-flight').expect(201);
    const started = Date.now();
    // TypeORM's PostgreSQL pool shutdown calls release() on every runner until none is left: a
    // second release() of a session that is still closing must wait for that close.
    await t.close();
    await closing.done;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(t.dataSource.isInitialized).toBe(false);
  });
});
