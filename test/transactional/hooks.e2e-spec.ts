import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { CapturingLogger } from './capturing-logger.js';
import { committedRows, HooksController, HooksService, trace, work } from './hooks.controller.js';

/** What the module hooks saw: which hook, for which data source, in which transaction. */
interface Seen {
  hook: 'onSessionStart' | 'beforeCommit';
  dataSource: string;
  txid: string | null;
}

/** Error a path throws on purpose after its commit, to prove that commit alone persisted. */
class AfterCommit extends Error {
  constructor(readonly txid: string | null) {
    super('the context fails after the commit');
  }
}

describe.each(engines)('commit hooks ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;
  let run: SessionFactory['runInNewContext'];
  const logger = new CapturingLogger();
  /** The module hooks act only while a hooks test runs, and then record what they saw. */
  const probe = { active: false, failBeforeCommit: false, seen: [] as Seen[] };

  async function record(hook: Seen['hook'], session: EntityManager, dataSource: string) {
    await session.insert(Example, { text: hook });
    probe.seen.push({ hook, dataSource, txid: await txid(engine, session) });
  }

  beforeAll(async () => {
    trace.engine = engine;
    t = await createTestApp(engine, {
      controllers: [HooksController],
      providers: [HooksService],
      context: {
        onSessionStart: async (session, dataSource) => {
          if (probe.active) await record('onSessionStart', session, dataSource);
        },
        beforeCommit: async (session, dataSource) => {
          if (!probe.active) return;
          await record('beforeCommit', session, dataSource);
          if (probe.failBeforeCommit) throw new Error('beforeCommit refused');
        },
      },
    });
    t.app.useLogger(logger);
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
    run = factory.runInNewContext.bind(factory);
  });
  beforeEach(async () => {
    await t.dataSource.query('DELETE FROM example');
    trace.log = [];
    logger.errors.length = 0;
    Object.assign(probe, { active: false, failBeforeCommit: false, seen: [] });
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  describe('sessionContext.afterCommit()', () => {
    it('runs after the commit (a fresh connection sees the row), awaited in order, before the response', async () => {
      await t.http().get('/hooks/after-commit').expect(200, 'ok');
      trace.log.push('response');
      expect(trace.log).toEqual(['first sees 1', 'first done', 'second', 'response']);
    });

    it('runInNewContext() and atomic() resolve only after their callbacks ran', async () => {
      const controller = t.app.get(HooksController);
      await run(async () => {
        await context.session().insert(Example, { text: 'context' });
        controller.registerCallbacks();
      });
      trace.log.push('runInNewContext resolved');
      await factory.atomic(async (manager) => {
        await manager.insert(Example, { text: 'atomic' });
        controller.registerCallbacks();
      });
      trace.log.push('atomic resolved');
      expect(trace.log).toEqual([
        'first sees 1',
        'first done',
        'second',
        'runInNewContext resolved',
        'first sees 2',
        'first done',
        'second',
        'atomic resolved',
      ]);
    });

    it('a failing callback is logged, never undoes the commit, and the next callbacks still run', async () => {
      await run(async () => {
        await context.session().insert(Example, { text: 'committed' });
        context.afterCommit(() => {
          throw new Error('callback boom');
        });
        context.afterCommit(() => trace.log.push('next ran'));
      });
      expect(trace.log).toEqual(['next ran']);
      expect(await t.texts()).toEqual(['committed']);
      expect(logger.errors).toHaveLength(1);
      expect(logger.errors[0]).toMatch(/afterCommit callback failed.*callback boom/s);
    });

    it('callbacks are dropped when the transaction rolls back (context, request, block)', async () => {
      await expect(
        run(async () => {
          await context.session().insert(Example, { text: 'rolled_back' });
          context.afterCommit(() => trace.log.push('dropped'));
          throw new Error('context fails');
        }),
      ).rejects.toThrow('context fails');
      await t.http().get('/hooks/after-commit-fails').expect(500);
      await expect(
        factory.atomic(async (manager) => {
          await manager.insert(Example, { text: 'rolled_back' });
          context.afterCommit(() => trace.log.push('dropped'));
          throw new Error('block fails');
        }),
      ).rejects.toThrow('block fails');
      expect(trace.log).toEqual([]);
      expect(await t.rows()).toBe(0);
    });

    it('inside REQUIRES_NEW they bind to the block: run when it commits, even if the outer rolls back', async () => {
      await expect(
        run(async () => {
          await context.session().insert(Example, { text: 'outer' });
          context.afterCommit(() => trace.log.push('outer callback'));
          await context.atomic(
            async (manager) => {
              await manager.insert(Example, { text: 'inner' });
              context.afterCommit(() => trace.log.push('inner callback'));
            },
            { propagation: Propagation.REQUIRES_NEW },
          );
          trace.log.push('block returned');
          throw new Error('outer fails');
        }),
      ).rejects.toThrow('outer fails');
      expect(trace.log).toEqual(['inner callback', 'block returned']);
      expect(await t.texts()).toEqual(['inner']);
    });

    it('callbacks run outside any context: session() fails clearly, @Transactional() and the factory commit', async () => {
      const service = t.app.get(HooksService);
      const writeFromCallback = (text: string) => async () => {
        try {
          context.session();
        } catch (error) {
          trace.log.push((error as Error).name);
        }
        await service.insert(`${text}_transactional`);
        await factory.atomic((manager) => manager.insert(Example, { text: `${text}_factory` }));
      };
      await run(async () => {
        await context.session().insert(Example, { text: 'unit' });
        context.afterCommit(writeFromCallback('unit'));
      });
      // A REQUIRES_NEW block's callbacks run while the outer context is still open: their writes
      // must not join the outer transaction, which rolls back here.
      await expect(
        run(async () => {
          await context.session().insert(Example, { text: 'outer' });
          await context.atomic(
            async (manager) => {
              await manager.insert(Example, { text: 'block' });
              context.afterCommit(writeFromCallback('block'));
            },
            { propagation: Propagation.REQUIRES_NEW },
          );
          throw new Error('outer fails');
        }),
      ).rejects.toThrow('outer fails');
      expect(trace.log).toEqual(['NoSessionContextError', 'NoSessionContextError']);
      expect(await t.texts()).toEqual([
        'block',
        'block_factory',
        'block_transactional',
        'unit',
        'unit_factory',
        'unit_transactional',
      ]);
    });

    it('inside NESTED and REQUIRED they bind to the outer transaction', async () => {
      const blocks = async () => {
        await context.session().insert(Example, { text: 'outer' });
        await context.atomic(() => context.afterCommit(() => trace.log.push('nested')), {
          propagation: Propagation.NESTED,
        });
        await context.atomic(() => context.afterCommit(() => trace.log.push('required')));
        trace.log.push('blocks returned');
      };
      await run(blocks);
      expect(trace.log).toEqual(['blocks returned', 'nested', 'required']);
      trace.log = [];
      await expect(
        run(async () => {
          await blocks();
          throw new Error('outer fails');
        }),
      ).rejects.toThrow('outer fails');
      expect(trace.log).toEqual(['blocks returned']);
    });

    it('a NESTED block rolled back to its savepoint drops its callbacks; the outer ones run', async () => {
      await run(async () => {
        await context.session().insert(Example, { text: 'outer' });
        context.afterCommit(() => trace.log.push('outer'));
        await context
          .atomic(
            async (manager) => {
              await manager.insert(Example, { text: 'nested' });
              context.afterCommit(() => trace.log.push('nested'));
              throw new Error('nested fails');
            },
            { propagation: Propagation.NESTED },
          )
          .catch(() => undefined);
        context.afterCommit(() => trace.log.push('after the savepoint'));
      });
      expect(trace.log).toEqual(['outer', 'after the savepoint']);
      expect(await t.texts()).toEqual(['outer']);
    });
  });

  describe('onSessionStart and beforeCommit on every commit path', () => {
    /** Each path runs `work()` and returns its transaction id; it throws when the commit fails. */
    const paths: Array<[string, () => Promise<string | null>]> = [
      [
        'the auto-commit interceptor (HTTP)',
        async () => {
          const response = await t.http().get('/hooks/work');
          if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
          return (response.body as { txid: string | null }).txid;
        },
      ],
      [
        'sessionContext.commit()',
        () =>
          run(async () => {
            const id = await work(context.session());
            await context.commit();
            throw new AfterCommit(id);
          }).catch(unwrapAfterCommit),
      ],
      [
        'sessionContext.atomic() with REQUIRES_NEW',
        () =>
          run(async () => {
            const id = await context.atomic(work, { propagation: Propagation.REQUIRES_NEW });
            throw new AfterCommit(id);
          }).catch(unwrapAfterCommit),
      ],
      ['@Transactional() outside a context', () => t.app.get(HooksService).work()],
      ['sessionFactory.runInNewContext()', () => run(() => work(context.session()))],
      [
        'sessionFactory.open() + commit()',
        async () => {
          await using session = factory.open();
          const id = await work(session.manager);
          await session.commit();
          return id;
        },
      ],
      ['sessionFactory.atomic()', () => factory.atomic(work)],
    ];

    it.each(paths)(
      '%s: onSessionStart and beforeCommit run in the work’s own transaction and commit with it',
      async (_path, commitPath) => {
        probe.active = true;
        const id = await commitPath();
        expect(id).not.toBeNull();
        expect(probe.seen).toEqual([
          { hook: 'onSessionStart', dataSource: 'default', txid: id },
          { hook: 'beforeCommit', dataSource: 'default', txid: id },
        ]);
        expect(await t.texts()).toEqual(['beforeCommit', 'onSessionStart', 'work']);
      },
    );

    it.each(paths)(
      '%s: a throwing beforeCommit rolls everything back',
      async (_path, commitPath) => {
        Object.assign(probe, { active: true, failBeforeCommit: true });
        await expect(commitPath()).rejects.toThrow(/beforeCommit refused|HTTP 500/);
        expect(probe.seen.map((seen) => seen.hook)).toEqual(['onSessionStart', 'beforeCommit']);
        expect(await committedRows(t.dataSource)).toBe(0);
      },
    );

    it('after a throwing beforeCommit, the rolled-back transaction’s afterCommit callbacks never run', async () => {
      await run(async () => {
        await context.session().insert(Example, { text: 'rolled_back' });
        context.afterCommit(() => trace.log.push('stale'));
        Object.assign(probe, { active: true, failBeforeCommit: true });
        await expect(context.commit()).rejects.toThrow('beforeCommit refused');
        probe.active = false;
        await context.session().insert(Example, { text: 'committed' });
        context.afterCommit(() => trace.log.push('fresh'));
      });
      expect(trace.log).toEqual(['fresh']);
      expect(await t.texts()).toEqual(['committed']);
    });
  });
});

/** Returns the transaction id of a path that failed on purpose after its commit. */
function unwrapAfterCommit(error: unknown): string | null {
  if (error instanceof AfterCommit) return error.txid;
  throw error;
}
