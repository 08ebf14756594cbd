import { Controller, Get, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Propagation, SessionContext, Transactional } from '../../src/index.js';
import { contextStorage } from '../../src/context/context-storage.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { within } from '../correctness/support-a.js';

/**
 * (Found by review 25.) An idle pooled connection's error must not run in the context of a request
 * that finished long ago. Sessions ask for connections outside the library's context; so must
 * TypeORM's own runners: plain TypeORM inside a request (`plainTypeorm: 'warn'`, the default) and
 * the plain manager of a NOT_SUPPORTED block. A connection pg-pool opened for them inside the
 * request kept that request's context for its whole life.
 */
@Injectable()
class Audit {
  constructor(readonly context: SessionContext) {}

  /** Two statements at once through the block's plain manager: the pool opens a connection. */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async twice() {
    const manager = this.context.session();
    await Promise.all([
      manager.query('SELECT pg_sleep(0.2)'),
      manager.query('SELECT pg_sleep(0.2)'),
    ]);
  }
}

@Controller('idle-errors')
class IdleErrorsController {
  constructor(
    private readonly context: SessionContext,
    private readonly audit: Audit,
    private readonly dataSource: DataSource,
  ) {}

  @Get('not-supported')
  async notSupported() {
    await this.audit.twice();
    return { unit: this.context.unitId() };
  }

  /** Plain TypeORM inside the request (the default plainTypeorm: 'warn' runs it on its own). */
  @Get('plain')
  async plain() {
    await Promise.all([
      this.dataSource.query('SELECT pg_sleep(0.2)'),
      this.dataSource.query('SELECT pg_sleep(0.2)'),
    ]);
    return { unit: this.context.unitId() };
  }

  /** Control: the request's own session and a parallel independent one (sessions' path). */
  @Get('sessions')
  async sessions() {
    await this.context.session().query('SELECT pg_sleep(0.2)');
    return { unit: this.context.unitId() };
  }
}

describe.each(engines.filter((e) => e.name === 'postgres'))(
  'an idle connection opened for a request does not run its error in that request ($name)',
  (engine) => {
    let app: TestApp;
    afterEach(async () => {
      await app?.close();
    });

    for (const route of ['sessions', 'not-supported', 'plain']) {
      it(`${route}: terminating the idle pool connections afterwards runs no error in the finished request's context`, async () => {
        app = await createTestApp(engine, {
          controllers: [IdleErrorsController],
          providers: [Audit],
          poolSize: 4,
        });
        const pool = (app.dataSource.driver as unknown as { master: import('events').EventEmitter })
          .master;
        const seen: Array<number | undefined> = [];
        pool.on('error', () => {
          seen.push(contextStorage.getStore()?.routingUnit?.id);
        });
        const res = await within(app.http().get(`/idle-errors/${route}`), 'the request', 10000);
        expect(res.status).toBe(200);
        const unit = (res.body as { unit: number }).unit;
        await app.expectClean();
        // Kill every idle connection of this database but ours (the pool's, all idle now).
        const killer = new DataSource({ ...(engine.options as object), type: 'postgres' } as never);
        await killer.initialize();
        try {
          const [{ n }] = (await killer.query(
            `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'`,
          )) as Array<{ n: number }>;
          expect(n).toBeGreaterThan(0);
        } finally {
          await killer.destroy();
        }
        await eventually(() => seen.length > 0, 3000);
        await new Promise((resolve) => setTimeout(resolve, 100));
        // No idle connection's error runs in the finished request's unit.
        expect({ unit, errorsInRequestContext: seen.filter((id) => id === unit).length }).toEqual({
          unit,
          errorsInRequestContext: 0,
        });
      });
    }
  },
);
