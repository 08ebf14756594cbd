import { Injectable, type OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';
import {
  InvalidOptionError,
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { closeApp, HANG_MS, within } from '../correctness/support-b.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines, isolationOf, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** A decorator of another library that marks the method with an own property of the function. */
function Flagged(): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    (descriptor.value as { flagged?: boolean }).flagged = true;
  };
}

/** The transaction id of the session current here. */
let current: (manager?: EntityManager) => Promise<string | null>;

@Injectable()
class Shorthand {
  constructor(private readonly context: SessionContext) {}

  /** `@Transactional(Propagation.X)`: the propagation alone. */
  @Transactional(Propagation.REQUIRES_NEW)
  async own(): Promise<string | null> {
    await this.context.session().insert(Example, { text: 'own' });
    return current();
  }

  /** Set by another decorator before this one wraps the method. */
  @Transactional()
  @Flagged()
  async flagged(): Promise<void> {}
}

/** Every method of the class runs in a transaction, unless it has its own decorator. */
@Injectable()
@Transactional({ propagation: Propagation.REQUIRES_NEW })
class WholeClass implements OnModuleInit {
  initialisedInUnit: boolean | undefined;

  constructor(
    private readonly context: SessionContext,
    @InjectRepository(Example) private readonly examples: Repository<Example>,
  ) {}

  /** Nest's lifecycle hooks are not wrapped: the app is not ready for units yet. */
  onModuleInit(): void {
    this.initialisedInUnit = this.context.isActive();
  }

  async writeThenFail(text: string): Promise<never> {
    await this.examples.insert({ text });
    throw new Error('the method failed after writing');
  }

  async write(text: string): Promise<string | null> {
    await this.examples.insert({ text });
    return current();
  }

  /** A method's own decorator wins over the class's. */
  @Transactional({ propagation: Propagation.MANDATORY })
  async mandatory(): Promise<string | null> {
    return current();
  }

  get label(): string {
    return 'a getter stays a getter';
  }

  static describe(): string {
    return 'static methods are not wrapped';
  }

  /** Generator methods are left alone: a wrapper would make them return a Promise. */
  async *numbers(): AsyncGenerator<number> {
    yield 1;
    yield 2;
  }
}

describe.each(engines)('@Transactional parity with the peers ($name)', (engine: Engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      imports: [TypeOrmContextModule.forFeature([Example])],
      providers: [Shorthand, WholeClass],
    });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
    current = (manager) => txid(engine, manager ?? context.session());
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  it('@Transactional(Propagation.REQUIRES_NEW) runs in a transaction of its own that commits even when the caller rolls back', async () => {
    const shorthand = t.app.get(Shorthand);
    const seen: Array<string | null> = [];
    const outcome = await within(
      HANG_MS,
      'a REQUIRES_NEW shorthand inside a unit that fails',
      factory
        .runInNewContext(async () => {
          await context.session().insert(Example, { text: 'outer' });
          seen.push(await current(), await shorthand.own());
          throw new Error('the unit fails');
        })
        .catch((error: Error) => error.message),
    );
    expect(outcome).toBe('the unit fails');
    expect(seen[0]).not.toBeNull();
    expect(seen[1]).not.toBeNull();
    expect(seen[1]).not.toBe(seen[0]);
    expect(await t.texts()).toEqual(['own']);
  });

  it('a string that is no propagation is refused at decoration, naming the shorthand and the options object', () => {
    const decorate = () => Transactional('REQUIRED_NEW' as Propagation);
    expect(decorate).toThrow(InvalidOptionError);
    expect(decorate).toThrow(/Propagation\.REQUIRES_NEW.*\{ dataSource: 'REQUIRED_NEW' \}/s);
  });

  it('own properties another decorator set on the method survive the wrapping', () => {
    const method = t.app.get(Shorthand).flagged as unknown as { flagged?: boolean };
    expect(method.flagged).toBe(true);
  });

  it('a class-level @Transactional() wraps every method: a failing one leaves nothing, two calls are two transactions', async () => {
    const whole = t.app.get(WholeClass);
    await expect(whole.writeThenFail('lost')).rejects.toThrow('the method failed after writing');
    const first = await whole.write('a');
    const second = await whole.write('b');
    expect(first).not.toBeNull();
    expect(second).not.toBe(first);
    expect(await t.texts()).toEqual(['a', 'b']);
  });

  it("a method's own decorator wins over the class's; lifecycle hooks, getters and static methods are left alone", async () => {
    const whole = t.app.get(WholeClass);
    await expect(whole.mandatory()).rejects.toMatchObject({ name: 'TransactionRequiredError' });
    const joined = await factory.runInNewContext(async () => {
      const outer = await current();
      return { outer, inner: await whole.mandatory() };
    });
    expect(joined.inner).toBe(joined.outer);
    expect(whole.initialisedInUnit).toBe(false);
    expect(whole.label).toBe('a getter stays a getter');
    expect(WholeClass.describe()).toBe('static methods are not wrapped');
    const numbers: number[] = [];
    for await (const n of whole.numbers()) numbers.push(n);
    expect(numbers).toEqual([1, 2]);
  });
});

describe.each(engines)('defaultTransactionOptions ($name)', (engine: Engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      context: { defaultTransactionOptions: { isolationLevel: 'SERIALIZABLE' } },
    });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  it('a block that begins a transaction starts from them; its own options win', async () => {
    const levels = await within(
      HANG_MS,
      'reading isolation levels',
      (async () => ({
        atomic: await factory.atomic(async (manager) => {
          await manager.insert(Example, { text: 'default' });
          return isolationOf(engine, manager);
        }),
        own: await factory.atomic(
          async (manager) => {
            await manager.insert(Example, { text: 'own' });
            return isolationOf(engine, manager);
          },
          { isolationLevel: 'READ COMMITTED' },
        ),
      }))(),
    );
    expect(levels).toEqual({ atomic: 'SERIALIZABLE', own: 'READ COMMITTED' });
  });

  it("a REQUIRED block that joins a unit's transaction is not affected (and logs nothing)", async () => {
    const joined = await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'unit' });
      const unitLevel = await isolationOf(engine, context.session());
      return { unitLevel, inner: await context.atomic((manager) => isolationOf(engine, manager)) };
    });
    expect(joined.inner).toBe(joined.unitLevel);
  });

  it("a second app in the process keeps its own defaults (none), even called inside this app's unit", async () => {
    const other = await createTestApp(engine);
    try {
      const otherFactory = other.app.get(SessionFactory);
      const levels = await within(
        HANG_MS,
        'two apps reading isolation levels',
        factory.runInNewContext(async () => ({
          mine: await factory.atomic(async (manager) => isolationOf(engine, manager)),
          other: await otherFactory.atomic(async (manager) => isolationOf(engine, manager)),
        })),
      );
      expect(levels.mine).toBe('SERIALIZABLE');
      expect(levels.other).not.toBe('SERIALIZABLE');
      await other.expectClean();
    } finally {
      await closeApp(other, engine);
    }
  });
});
