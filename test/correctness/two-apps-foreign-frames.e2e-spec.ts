import { Injectable, Module } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import {
  Propagation,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle } from './support-a.js';
import { partners, startApp } from './two-apps-support.js';

/**
 * Found in the review of "no process-wide mutable state" (98b7a94), promise: "another app's context is never
 * joined; each unit of work belongs to one app". Two holes in the frames:
 *
 * 1. A NOT_SUPPORTED / NEVER / SUPPORTS block opened outside any context of its app puts its
 *    data source's plain manager in a frame WITHOUT a unit, keyed by the data source NAME. A frame
 *    without a unit counts as every app's (`ContextFrame.ownedBy`), so app B's repositories and
 *    `session()` called inside it resolve 'default' to APP A's manager: B writes into A's database.
 * 2. A REQUIRES_NEW (or NOT_SUPPORTED) block of A runs in a child of A's frame found up the outer
 *    chain, which drops the frames in between: app B's code inside it loses B's context (its
 *    writes escape B's unit and commit on their own).
 */

/** Per app: the context-aware repository of `example`. */
@Injectable()
class Store {
  constructor(@InjectRepository(Example) readonly examples: Repository<Example>) {}
}

/** Per app: methods that run a callback in a block of that app. */
@Injectable()
class Blocks {
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async withoutTransaction<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async inNewTransaction<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  @Transactional()
  async inTransaction<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }
}

@Module({
  imports: [TypeOrmContextModule.forFeature([Example])],
  providers: [Store, Blocks],
})
class FeatureModule {}

describe.each(partners)(
  'two apps: frames of one app seen by another; app A on PostgreSQL, app B on %s',
  (_name, partner) => {
    let a: TestApp;
    let b: TestApp;

    beforeEach(async () => {
      a = await startApp(engines[0]!, { imports: [FeatureModule] });
      b = await startApp(await partner(), { imports: [FeatureModule] });
    });

    afterEach(async () => {
      await a.close();
      await b.close();
    });

    it("B's repository inside A's NOT_SUPPORTED method (outside any context) writes into B's database, not A's", async () => {
      // Expected: outside any context of B, B's repository is a plain repository of B's data
      // source (docs/repositories.md). Before the fix, it resolves 'default' to A's manager that A's
      // NOT_SUPPORTED block put in a unit-less frame, and the row lands in A's database.
      const work = a.app
        .get(Blocks)
        .withoutTransaction(() => b.app.get(Store).examples.insert({ text: 'B' }));
      const result = await settle(work, "A's NOT_SUPPORTED block");
      expect(result.ok ? 'ok' : `${result.name}: ${result.message}`).toBe('ok');
      expect(await a.rows()).toBe(0);
      expect(await b.texts()).toEqual(['B']);
    });

    it("inside B's context, A's NOT_SUPPORTED method leaves B's repository in B's unit (rolled back with it)", async () => {
      // Expected: B's write joins B's context and is rolled back when that context fails; A's
      // database is untouched. Before the fix, the write goes to A's database, auto-committed.
      const work = b.app.get(SessionFactory).runInNewContext(async () => {
        await a.app
          .get(Blocks)
          .withoutTransaction(() => b.app.get(Store).examples.insert({ text: 'B, rolled back' }));
        throw new Error("B's context fails");
      });
      const result = await settle(work, "B's context");
      expect(result.ok ? 'ok' : result.message).toBe("B's context fails");
      expect(await a.rows()).toBe(0);
      expect(await b.rows()).toBe(0);
    });

    it("A's REQUIRES_NEW block inside B's context (inside A's) keeps B's code in B's unit", async () => {
      // A context of A -> a context of B -> A's REQUIRES_NEW method -> B's repository.
      // Expected: B's write belongs to B's context, rolled back when it fails. Before the fix, A's block
      // runs in a child of A's outer frame, B's frame is gone: B's repository finds no context
      // and auto-commits the row into B's database.
      const work = a.app.get(SessionFactory).runInNewContext(() =>
        b.app.get(SessionFactory).runInNewContext(async () => {
          await a.app
            .get(Blocks)
            .inNewTransaction(() => b.app.get(Store).examples.insert({ text: 'B, rolled back' }));
          throw new Error("B's context fails");
        }),
      );
      const result = await settle(work, "A's then B's context");
      expect(result.ok ? 'ok' : result.message).toBe("B's context fails");
      expect(await a.rows()).toBe(0);
      expect(await b.rows()).toBe(0);
    });
  },
);
