import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import {
  Propagation,
  Transactional,
  TransactionRequiredError,
  TypeOrmContextModule,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp } from '../correctness/support-b.js';

/**
 * A method decorator of the application's own that wraps the method (timing, metrics, tracing:
 * nestjs-otel's `@Span()` and most hand-written ones do this), above `@Transactional()`.
 */
const Timed =
  (): MethodDecorator =>
  (_target, _key, descriptor: PropertyDescriptor): void => {
    const original = descriptor.value as (...args: unknown[]) => Promise<unknown>;
    descriptor.value = async function (this: unknown, ...args: unknown[]) {
      return await original.apply(this, args);
    };
  };

@Injectable()
@Transactional()
class LedgerService {
  constructor(@InjectRepository(Example) private readonly examples: Repository<Example>) {}

  /** Must only ever join a caller's transaction. */
  @Timed()
  @Transactional(Propagation.MANDATORY)
  async post(text: string): Promise<void> {
    await this.examples.insert({ text });
  }
}

/**
 * docs/transactions.md "On a class": `@Transactional(options)` on a class applies to every method
 * "as if each carried it ... A method with its own `@Transactional()` keeps its own" (README: "a
 * method's own `@Transactional()` wins"). The class decorator recognises a method's own decorator
 * only when `@Transactional()`'s wrapper is the method itself: with any wrapping decorator above
 * it, the class's REQUIRED wraps the method again, opens a unit and a transaction around it, and
 * the method's own MANDATORY is satisfied by the class's transaction instead of refusing to run
 * without a caller's: the row is written and committed.
 */
describe.each(engines)(
  'review: class-level @Transactional over a wrapped method ($name)',
  (engine: Engine) => {
    let t: TestApp | undefined;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        imports: [TypeOrmContextModule.forFeature([Example])],
        providers: [LedgerService],
      });
    });

    afterAll(() => closeApp(t, engine));

    it("keeps the method's own MANDATORY: called outside any transaction it refuses to run", async () => {
      await expect(t!.app.get(LedgerService).post('outside')).rejects.toBeInstanceOf(
        TransactionRequiredError,
      );
      expect(await t!.rows()).toBe(0);
      await t!.expectClean();
    });
  },
);
