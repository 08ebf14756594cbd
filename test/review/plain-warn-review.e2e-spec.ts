import { jest } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import {
  ConnectionAcquireTimeoutError,
  InjectSession,
  Propagation,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { logger } from '../../src/logger.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp } from '../correctness/support-b.js';

/** The repositories of this module, as an app that migrated has them. */
@Injectable()
class OwnService {
  constructor(@InjectRepository(Example) readonly examples: Repository<Example>) {}
}

/** Whether a warning about plain TypeORM code was logged by `spy`. */
const plainWarnings = (spy: { mock: { calls: unknown[][] } }) =>
  spy.mock.calls.map((call) => String(call[0])).filter((line) => /plain/i.test(line));

/**
 * Review of the default `plainTypeorm: 'warn'` with this module's own forFeature() repositories:
 * TypeORM's `EntityManager.preload()` loads through `this.dataSource.manager`, the plain manager.
 */
describe.each(engines)(
  "plainTypeorm default ('warn'), forFeature() repositories ($name)",
  (engine: Engine) => {
    let t: TestApp | undefined;
    let own: OwnService;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        imports: [TypeOrmContextModule.forFeature([Example])],
        providers: [OwnService],
      });
      own = t.app.get(OwnService);
      factory = t.app.get(SessionFactory);
    });

    beforeEach(async () => {
      await t!.dataSource.query('DELETE FROM example');
    });

    afterAll(() => closeApp(t, engine));

    it("a forFeature() repository's preload() sees the row its unit wrote before (it is this module's repository, not plain code)", async () => {
      const preloaded = await factory.runInNewContext(async () => {
        const saved = await own.examples.save({ text: 'written' });
        return own.examples.preload({ id: saved.id, text: 'changed' });
      });
      expect(preloaded).toEqual(expect.objectContaining({ text: 'changed' }));
      await t!.expectClean();
    });

    it("a forFeature() repository's preload() inside a unit logs no plain-TypeORM warning", async () => {
      const warn = jest.spyOn(logger, 'warn');
      try {
        await factory.runInNewContext(async () => {
          const saved = await own.examples.save({ text: 'written' });
          await own.examples.preload({ id: saved.id, text: 'changed' });
        });
        expect(plainWarnings(warn)).toEqual([]);
      } finally {
        warn.mockRestore();
      }
      await t!.expectClean();
    });
  },
);

/** A typeorm-transactional-style service: plain repository, plain data source. */
@Injectable()
class PlainService {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    readonly dataSource: DataSource,
  ) {}
}

/** `@Transactional()` methods around the plain service. */
@Injectable()
class BlocksService {
  constructor(
    readonly plain: PlainService,
    @InjectSession() readonly session: EntityManager,
  ) {}

  @Transactional()
  async writeThenSuspend(inside: () => Promise<unknown>): Promise<unknown> {
    await this.plain.examples.insert({ text: 'holds-the-connection' });
    return this.suspended(inside);
  }

  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async suspended(inside: () => Promise<unknown>): Promise<unknown> {
    return inside();
  }
}

/** Settles with what `promise` did, or `'still waiting'` after `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting'), ms)));
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ resolved: value }),
        (error: unknown) => error,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A NOT_SUPPORTED block inside a transaction holding the pool's only connection: this module's
 * repositories there wait at most `acquireTimeout` and fail with ConnectionAcquireTimeoutError
 * (docs: "same outcomes as forFeature()"); plain TypeORM code there is "plain autocommit".
 */
describe.each(engines)(
  "plainTypeorm: 'join', NOT_SUPPORTED with the pool full ($name)",
  (engine: Engine) => {
    let t: TestApp | undefined;
    let blocks: BlocksService;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        imports: [TypeOrmModule.forFeature([Example])],
        providers: [PlainService, BlocksService],
        context: { plainTypeorm: 'join', acquireTimeout: 300 },
        poolSize: 1,
      });
      blocks = t.app.get(BlocksService);
      factory = t.app.get(SessionFactory);
    });

    afterAll(() => closeApp(t, engine));

    it("this module's manager in the block fails with ConnectionAcquireTimeoutError", async () => {
      const outcome = await factory.runInNewContext(() =>
        blocks.writeThenSuspend(() => within(blocks.session.count(Example), 3000)),
      );
      expect(outcome).toBeInstanceOf(ConnectionAcquireTimeoutError);
      await t!.expectClean();
    });

    it('plain repository code in the block waits at most acquireTimeout, as a forFeature() repository does, instead of forever', async () => {
      let plainCall: Promise<unknown> | undefined;
      const outcome = await factory.runInNewContext(() =>
        blocks.writeThenSuspend(() => {
          plainCall = t!.app.get(PlainService).examples.count();
          return within(plainCall, 3000);
        }),
      );
      // Let the plain call that may still wait get its connection before the app closes.
      await plainCall?.catch(() => undefined);
      expect(outcome).toBeInstanceOf(ConnectionAcquireTimeoutError);
    });
  },
);
