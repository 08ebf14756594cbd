import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, checkedOut, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { outcome, within } from '../correctness/support-a.js';

/**
 * A block that owns its transactions is never re-run once anything of it committed: midway
 * (`sessionContext.commit()`), one data source before the next one's COMMIT failed, or all of it
 * before an `afterCommit` callback failed; nor does the retry of a block around it re-run it.
 */

/** A statement the server answers with a serialization failure / deadlock error (retryable). */
function retryableFailure(engine: Engine): string {
  return engine.name === 'postgres'
    ? "DO $$ BEGIN RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = '40001'; END $$"
    : "BEGIN NOT ATOMIC SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'simulated deadlock'; END";
}

const failCommitOf: { name?: string } = {};

describe.each(engines)(
  'owned blocks with two data sources: retry never re-runs a commit ($name)',
  (engine) => {
    let t: TestApp;
    let analytics: DataSource;
    let context: SessionContext;
    let factory: SessionFactory;

    /** Texts of rows written through 'analytics' (same table, marked by an 'a:' prefix). */
    const analyticsTexts = async () => (await t.texts()).filter((text) => text.startsWith('a:'));
    const defaultTexts = async () => (await t.texts()).filter((text) => !text.startsWith('a:'));

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot(typeormOptions(engine)),
          TypeOrmModule.forRoot({ ...typeormOptions(engine, 10, 'analytics'), synchronize: false }),
          TypeOrmContextModule.forRoot({
            dataSources: ['default', 'analytics'],
            callbackErrors: 'throw',
            // Fails the commit of one data source once, with a serialization failure.
            beforeCommit: (_manager, name) => {
              if (failCommitOf.name !== name) return;
              failCommitOf.name = undefined;
              throw Object.assign(new Error(`serialization failure at the commit of '${name}'`), {
                code: '40001',
              });
            },
          }),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      analytics = app.get(getDataSourceToken('analytics'));
      context = app.get(SessionContext);
      factory = app.get(SessionFactory);
      t = wrap(app, engine, app.get(getDataSourceToken()));
    });
    beforeEach(async () => {
      failCommitOf.name = undefined;
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(async () => {
      await t.expectClean();
      expect(checkedOut(analytics)).toBe(0);
    });
    afterAll(() => t.close());

    it('a block that committed its analytics session midway (sessionContext.commit) is not re-run', async () => {
      // Expected: "a block where anything committed is never re-run". The block committed
      // 'a:midway' through sessionContext.commit('analytics'); when its default session then fails
      // with a retryable error, the error escapes after one attempt. A re-run would write the
      // committed analytics row a second time.
      let attempts = 0;
      const result = await within(
        outcome(
          factory.runInNewContext(() =>
            factory.atomic(
              async (manager: EntityManager) => {
                attempts++;
                await context.session('analytics').insert(Example, { text: 'a:midway' });
                await context.commit('analytics');
                await manager.insert(Example, { text: `default attempt ${attempts}` });
                if (attempts === 1) await manager.query(retryableFailure(engine));
              },
              { retry: 2 },
            ),
          ),
        ),
        'atomic() with retry',
      );
      expect({ attempts, ok: result.ok }).toEqual({ attempts: 1, ok: false });
      expect(result).toMatchObject({
        name: 'PartlyCommittedError',
        message: expect.stringMatching(
          /^sessionFactory\.atomic\(\) failed after part .*'analytics'/,
        ),
      });
      expect(await analyticsTexts()).toEqual(['a:midway']);
      expect(await defaultTexts()).toEqual([]);
    });

    it('a block that committed the default data source midway is not re-run either', async () => {
      let attempts = 0;
      const result = await within(
        outcome(
          factory.runInNewContext(() =>
            context.atomic(
              async (manager: EntityManager) => {
                attempts++;
                await manager.insert(Example, { text: 'committed midway' });
                await context.commit();
                await context.session('analytics').insert(Example, { text: `a:${attempts}` });
                if (attempts === 1) {
                  await context.session('analytics').query(retryableFailure(engine));
                }
              },
              { propagation: Propagation.REQUIRES_NEW, retry: 2 },
            ),
          ),
        ),
        'REQUIRES_NEW with retry',
      );
      expect({ attempts, ok: result.ok }).toEqual({ attempts: 1, ok: false });
      expect(result).toMatchObject({ name: 'PartlyCommittedError' });
      expect(await defaultTexts()).toEqual(['committed midway']);
      expect(await analyticsTexts()).toEqual([]);
    });

    it('an inner owned block that committed is not re-run by the outer retry when its afterCommit throws a retryable error', async () => {
      // The inner block committed; its afterCommit callback then failed with a serialization
      // failure of its own, so the inner call rejects with CallbackError (the commit stands). That
      // is no serialization failure of the OUTER block's transaction: the outer block is not re-run
      // (it would commit the inner block's work a second time); the CallbackError escapes.
      let callbacks = 0;
      let attempts = 0;
      const result = await within(
        outcome(
          factory.atomic(
            async () => {
              attempts++;
              await factory.atomic(async (manager: EntityManager) => {
                await manager.insert(Example, { text: 'inner' });
                context.afterCommit(() => {
                  callbacks++;
                  if (callbacks === 1) {
                    throw Object.assign(new Error('serialization failure in a callback'), {
                      code: '40001',
                    });
                  }
                });
              });
            },
            { retry: 2 },
          ),
        ),
        'outer atomic() with retry',
      );
      expect({ attempts, ok: result.ok, name: result.ok ? undefined : result.name }).toEqual({
        attempts: 1,
        ok: false,
        name: 'CallbackError',
      });
      expect(await defaultTexts()).toEqual(['inner']);
    });

    it('a partly committed inner block is not re-run by the retry of the block around it', async () => {
      // The inner atomic() wrote to 'default' and 'analytics'; 'default' committed, then the
      // commit of 'analytics' failed with a serialization failure. The inner block rejects with
      // PartlyCommittedError (the serialization failure is its cause), which no retry re-runs: the
      // block around it would write the committed 'default' row a second time.
      let attempts = 0;
      const result = await within(
        outcome(
          factory.atomic(
            async () => {
              attempts++;
              await factory.atomic(async (manager: EntityManager) => {
                await manager.insert(Example, { text: 'inner default' });
                await context.session('analytics').insert(Example, { text: 'a:inner' });
                if (attempts === 1) failCommitOf.name = 'analytics';
              });
            },
            { retry: 2, dataSource: 'analytics' },
          ),
        ),
        'outer atomic() with retry',
      );
      expect({ attempts, ok: result.ok }).toEqual({ attempts: 1, ok: false });
      if (result.ok) return;
      expect(result.name).toBe('PartlyCommittedError');
      expect((result.error as Error).cause).toMatchObject({
        message: "serialization failure at the commit of 'analytics'",
        code: '40001',
      });
      expect(await defaultTexts()).toEqual(['inner default']);
      expect(await analyticsTexts()).toEqual([]);
    });
  },
);
