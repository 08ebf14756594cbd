import { Controller, Post } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { InjectSession, SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { Example } from '../support/example.entity.js';
import { createTestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite, slowSql } from '../support/engines.js';

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
    const sleeping = session.query(slowSql(current, 0.3)).catch(() => undefined);
    closing.done = Promise.all([sleeping, this.context.close()]);
    return 'ok';
  }
}

describe.each(enginesAndSqlite)('application shutdown ($name)', (engine) => {
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

describe.each(enginesAndSqlite)('application shutdown with injected sessions ($name)', (engine) => {
  it('app.close() with @InjectSession() and forFeature() providers resolves (Nest probes their hooks)', async () => {
    @Controller()
    class Probed {
      constructor(@InjectSession() readonly session: EntityManager) {}
    }
    const t = await createTestApp(engine, {
      controllers: [Probed],
      imports: [TypeOrmContextModule.forFeature([Example])],
    });
    const probed = t.app.get(Probed);
    await expect(t.close()).resolves.toBeUndefined();
    expect(t.dataSource.isInitialized).toBe(false);
    // Nest probes every provider for its hooks, in an order that may come after this module shut
    // down: the probe must not try to resolve a session (it threw 'has shut down' in the sample).
    const hooks = [
      'onModuleDestroy',
      'beforeApplicationShutdown',
      'onApplicationShutdown',
    ] as const;
    for (const hook of hooks) {
      expect((probed.session as unknown as Record<string, unknown>)[hook]).toBeUndefined();
    }
  });
});
