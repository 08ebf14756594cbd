import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  Injectable,
  Post,
} from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { settle } from '../correctness/support-a.js';
import { eventually, typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { backendId, checkedOut, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** An error the retry treats as a serialization failure. */
function serializationFailure(): Error {
  return Object.assign(new Error('could not serialize access (simulated)'), { code: '40001' });
}

/** Resolves once `gate` opens: code after it runs in the context it was started in, later. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const filterSeen: { logged?: unknown } = {};

/** Writes an error log in a transaction of its own, after the request's unit ended. */
@Catch()
@Injectable()
class ErrorLogFilter implements ExceptionFilter {
  constructor(private readonly factory: SessionFactory) {}

  async catch(_error: unknown, host: ArgumentsHost) {
    filterSeen.logged = await settle(
      this.factory.atomic((manager) => manager.insert(Example, { text: 'error_log' })),
      'atomic() in the exception filter',
    );
    host
      .switchToHttp()
      .getResponse<{ status(code: number): { json(body: unknown): void } }>()
      .status(500)
      .json({ logged: true });
  }
}

@Controller()
class FailingController {
  @Post('fail')
  fail() {
    throw new Error('the handler failed');
  }
}

describe.each(engines)('owned blocks inside a context ($name)', (engine) => {
  let t: TestApp;
  let analytics: DataSource;
  let context: SessionContext;
  let factory: SessionFactory;

  /** Texts of `example` (both data sources point at the same database). */
  const texts = () => t.texts();

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmModule.forRoot(typeormOptions(engine, 10, 'analytics')),
        TypeOrmContextModule.forRoot({
          dataSources: ['default', 'analytics'],
          callbackErrors: 'throw',
        }),
      ],
      controllers: [FailingController],
      providers: [{ provide: APP_FILTER, useClass: ErrorLogFilter }],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    analytics = app.get(getDataSourceToken('analytics'));
    context = app.get(SessionContext);
    factory = app.get(SessionFactory);
    t = wrap(app, engine, app.get(getDataSourceToken()));
  });
  beforeEach(async () => {
    filterSeen.logged = undefined;
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(async () => {
    await t.expectClean();
    expect(checkedOut(analytics)).toBe(0);
  });
  afterAll(() => t.close());

  it('sessionFactory.atomic() fails: its writes to a second data source are rolled back with it', async () => {
    const result = await settle(
      factory.runInNewContext(async () => {
        await context.session('analytics').insert(Example, { text: 'request_analytics' });
        const block = await settle(
          factory.atomic(async (manager) => {
            await manager.insert(Example, { text: 'block_default' });
            await context.session('analytics').insert(Example, { text: 'block_analytics' });
            throw new Error('the block fails');
          }),
          'the failing block',
        );
        expect(block).toMatchObject({ ok: false, message: 'the block fails' });
      }),
      'runInNewContext()',
    );
    expect(result).toMatchObject({ ok: true });
    expect(await texts()).toEqual(['request_analytics']);
  });

  it('REQUIRES_NEW commits its second data source with the block, even when the caller then fails', async () => {
    const seen: { blockBackend?: string; requestBackend?: string } = {};
    const result = await settle(
      factory.runInNewContext(async () => {
        const requestAnalytics = context.session('analytics');
        await requestAnalytics.insert(Example, { text: 'request_analytics' });
        seen.requestBackend = await backendId(engine, requestAnalytics);
        await context.atomic(
          async () => {
            const blockAnalytics = context.session('analytics');
            await blockAnalytics.insert(Example, { text: 'block_analytics' });
            seen.blockBackend = await backendId(engine, blockAnalytics);
          },
          { propagation: Propagation.REQUIRES_NEW },
        );
        throw new Error('the caller fails after the block');
      }),
      'runInNewContext()',
    );
    expect(result).toMatchObject({ ok: false, message: 'the caller fails after the block' });
    // The block's analytics session was a session (connection, transaction) of its own.
    expect(seen.blockBackend).toEqual(expect.any(String));
    expect(seen.blockBackend).not.toBe(seen.requestBackend);
    expect(await texts()).toEqual(['block_analytics']);
  });

  it('the timeout bounds the whole block: a statement hanging on its second data source is stopped', async () => {
    const result = await settle(
      factory.runInNewContext(() =>
        factory.atomic(
          async (manager) => {
            await manager.insert(Example, { text: 'block_default' });
            const blockAnalytics = context.session('analytics');
            await blockAnalytics.insert(Example, { text: 'block_analytics' });
            await blockAnalytics.query(engine.sleepSql(10));
          },
          { timeout: 300 },
        ),
      ),
      'a block whose timeout elapsed',
      4000,
    );
    expect(result).toMatchObject({ ok: false, name: 'TransactionTimeoutError' });
    expect(await texts()).toEqual([]);
    // The server stopped the statement too (it would hold its locks for 10 s otherwise).
    const running =
      engine.name === 'postgres'
        ? "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query = $1"
        : 'SELECT count(*) AS n FROM information_schema.processlist WHERE info = ?';
    await eventually(async () => {
      const rows: Array<{ n: string | number }> = await t.dataSource.query(running, [
        engine.sleepSql(10),
      ]);
      return Number(rows[0]?.n) === 0;
    }, 2000);
  });

  if (engine.name === 'postgres')
    it('a session the block closes and uses again begins with the block’s options', async () => {
      const levels = await factory.runInNewContext(() =>
        factory.atomic(
          async (manager) => {
            const show = 'SHOW transaction_isolation';
            const before: Array<{ transaction_isolation: string }> = await manager.query(show);
            await context.close();
            const after: Array<{ transaction_isolation: string }> = await context
              .session()
              .query(show);
            return [before[0]?.transaction_isolation, after[0]?.transaction_isolation];
          },
          { isolationLevel: 'SERIALIZABLE' },
        ),
      );
      expect(levels).toEqual(['serializable', 'serializable']);
    });

  it('retry re-runs the block without duplicating its writes to a second data source', async () => {
    let attempts = 0;
    const result = await settle(
      factory.runInNewContext(() =>
        factory.atomic(
          async (manager) => {
            attempts++;
            await context.session('analytics').insert(Example, { text: 'block_analytics' });
            await manager.insert(Example, { text: 'block_default' });
            if (attempts === 1) throw serializationFailure();
          },
          { retry: 2 },
        ),
      ),
      'runInNewContext()',
    );
    expect(result).toMatchObject({ ok: true });
    expect(attempts).toBe(2);
    expect(await texts()).toEqual(['block_analytics', 'block_default']);
  });

  it('a block that committed is never re-run, whatever its afterCommit callback throws', async () => {
    let attempts = 0;
    const result = await settle(
      factory.runInNewContext(() =>
        factory.atomic(
          async (manager) => {
            attempts++;
            await manager.insert(Example, { text: 'committed_once' });
            context.afterCommit(() => {
              throw serializationFailure();
            });
          },
          { retry: 2 },
        ),
      ),
      'runInNewContext()',
    );
    expect(attempts).toBe(1);
    expect(await texts()).toEqual(['committed_once']);
    // callbackErrors: 'throw' reports the callback's failure; the commit stands.
    expect(result).toMatchObject({ ok: false, name: 'CallbackError' });
  });

  it('the same outside any context: a committed block is never re-run', async () => {
    let attempts = 0;
    const result = await settle(
      factory.atomic(
        async (manager) => {
          attempts++;
          await manager.insert(Example, { text: 'committed_once' });
          context.afterCommit(() => {
            throw serializationFailure();
          });
        },
        { retry: 2 },
      ),
      'sessionFactory.atomic()',
    );
    expect(attempts).toBe(1);
    expect(await texts()).toEqual(['committed_once']);
    expect(result).toMatchObject({ ok: false, name: 'CallbackError' });
  });

  it('after the context ended: sessionFactory.atomic() and REQUIRES_NEW run; REQUIRED fails clearly', async () => {
    const { opened, open } = gate();
    const late: Array<Promise<unknown>> = [];
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'request' });
      const later = opened.then(() => [
        settle(
          factory.atomic((manager) => manager.insert(Example, { text: 'late_factory' })),
          'late sessionFactory.atomic()',
        ),
        settle(
          context.atomic(
            async (manager) => {
              await manager.insert(Example, { text: 'late_requires_new' });
              await context.session('analytics').insert(Example, { text: 'late_analytics' });
            },
            { propagation: Propagation.REQUIRES_NEW },
          ),
          'late REQUIRES_NEW',
        ),
        settle(
          context.atomic((manager) => manager.insert(Example, { text: 'late_required' })),
          'late REQUIRED',
        ),
      ]);
      late.push(later.then((all) => Promise.all(all)));
    });
    open();
    const [factoryAtomic, requiresNew, required] = (await late[0]) as Array<{ ok: boolean }>;
    expect(factoryAtomic).toMatchObject({ ok: true });
    expect(requiresNew).toMatchObject({ ok: true });
    expect(required).toMatchObject({ ok: false, name: 'SessionContextEndedError' });
    expect(await texts()).toEqual([
      'late_analytics',
      'late_factory',
      'late_requires_new',
      'request',
    ]);
  });

  it('an exception filter writes an error log with sessionFactory.atomic() after the unit ended', async () => {
    await t.http().post('/fail').expect(500);
    expect(filterSeen.logged).toMatchObject({ ok: true });
    expect(await texts()).toEqual(['error_log']);
  });
});
