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
import { type Engine, enginesAndSqlite } from '../support/engines.js';
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
 * docs/transactions.md "On a class": a method with its own `@Transactional()` keeps its own, also
 * when another decorator wraps it afterwards (the class decorator once recognised it only by its
 * wrapper: with a wrapping decorator above it, the class's REQUIRED wrapped it again, satisfied
 * its MANDATORY, and the row was written and committed). Found by review.
 */
describe.each(enginesAndSqlite)(
  'class-level @Transactional over a wrapped method ($name)',
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
