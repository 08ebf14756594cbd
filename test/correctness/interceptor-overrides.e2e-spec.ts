import { Controller, type ExecutionContext, Injectable, Post } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { AutoCommitInterceptor, SessionContext } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { answered, closeApp, sleep, watchProcess } from './support-b.js';

/** Which override throws in the current test. */
const overrides = { shouldCommitThrows: false, onErrorThrows: false, beforeCommitThrows: false };

/** A user's subclass whose overrides throw when the test says so. */
@Injectable()
class ThrowingAutoCommit extends AutoCommitInterceptor {
  protected override shouldCommit(context: ExecutionContext): boolean {
    if (overrides.shouldCommitThrows) throw new Error('shouldCommit exploded');
    return super.shouldCommit(context);
  }

  protected override onError(error: unknown, context: ExecutionContext): unknown {
    if (overrides.onErrorThrows) throw new Error('onError exploded');
    return super.onError(error, context);
  }
}

@Controller('overrides')
class OverridesController {
  constructor(private readonly context: SessionContext) {}

  @Post('insert')
  async insert() {
    await this.context.session().insert(Example, { text: 'written' });
    return 'ok';
  }

  @Post('insert-then-fail')
  async insertThenFail() {
    await this.context.session().insert(Example, { text: 'written' });
    throw new Error('handler failed');
  }
}

describe.each(enginesAndSqlite)(
  'AutoCommitInterceptor subclass overrides that throw ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let watch: ReturnType<typeof watchProcess>;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        controllers: [OverridesController],
        providers: [{ provide: APP_INTERCEPTOR, useClass: ThrowingAutoCommit }],
        context: {
          autoCommit: false,
          beforeCommit: () => {
            if (overrides.beforeCommitThrows) throw new Error('commit refused');
          },
        },
      });
    });
    beforeEach(async () => {
      Object.assign(overrides, {
        shouldCommitThrows: false,
        onErrorThrows: false,
        beforeCommitThrows: false,
      });
      await t.dataSource.query('DELETE FROM example');
      watch = watchProcess();
    });
    afterEach(async () => {
      await sleep(50); // an error reported from a timer or an unobserved promise surfaces meanwhile
      watch.stop();
      await t.expectClean();
    });
    afterAll(() => closeApp(t, engine));

    /** Asserts that nothing escaped to the process as an uncaught exception or unhandled rejection. */
    async function expectNothingUncaught() {
      await sleep(50);
      expect(watch.errors.map(String)).toEqual([]);
    }

    it('shouldCommit() throwing: 500, nothing written, pool clean, nothing uncaught', async () => {
      overrides.shouldCommitThrows = true;
      const response = await answered(
        t.http().post('/overrides/insert'),
        engine,
        'POST /insert with shouldCommit() throwing',
      );
      expect(response.status).toBe(500);
      expect(await t.rows()).toBe(0);
      await t.expectClean();
      await expectNothingUncaught();
    });

    it('onError() throwing on a failed handler: 500, nothing written, pool clean, nothing uncaught', async () => {
      overrides.onErrorThrows = true;
      const response = await answered(
        t.http().post('/overrides/insert-then-fail'),
        engine,
        'POST /insert-then-fail with onError() throwing',
      );
      expect(response.status).toBe(500);
      expect(await t.rows()).toBe(0);
      await t.expectClean();
      await expectNothingUncaught();
    });

    it('onError() throwing on a failed commit: 500, nothing written, pool clean, nothing uncaught', async () => {
      overrides.onErrorThrows = true;
      overrides.beforeCommitThrows = true;
      const response = await answered(
        t.http().post('/overrides/insert'),
        engine,
        'POST /insert with a failing commit and onError() throwing',
      );
      expect(response.status).toBe(500);
      expect(await t.rows()).toBe(0);
      await t.expectClean();
      await expectNothingUncaught();
    });
  },
);
