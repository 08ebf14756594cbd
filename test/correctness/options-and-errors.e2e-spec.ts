import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { getRepositoryToken, InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  type TransactionOptions,
  TypeOrmContextModule,
} from '../../src/index.js';
import { createTestApp, type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { type Engine, engines, isolationOf, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, within } from './support-b.js';

@Injectable()
class RepositoryUser {
  constructor(@InjectRepository(Example) readonly examples: Repository<Example>) {}
}

describe.each(engines)("the data source's own isolationLevel option ($name)", (engine: Engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(engine), isolationLevel: 'SERIALIZABLE' }),
        TypeOrmContextModule.forRoot(),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const dataSource = app.get(DataSource);
    await dataSource.query('DELETE FROM example');
    t = wrap(app, engine, dataSource);
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  it("a context session's transaction runs at the data source's isolationLevel; a per-call isolationLevel still wins", async () => {
    const levels = await within(
      HANG_MS,
      'reading the isolation levels',
      (async () => ({
        contextSession: await factory.runInNewContext(() => isolationOf(engine, context.session())),
        factorySession: await (async () => {
          await using session = factory.open();
          return await isolationOf(engine, session.manager);
        })(),
        perCall: await factory.atomic((manager) => isolationOf(engine, manager), {
          isolationLevel: 'READ COMMITTED',
        }),
      }))(),
    );
    expect(levels).toEqual({
      contextSession: 'SERIALIZABLE',
      factorySession: 'SERIALIZABLE',
      perCall: 'READ COMMITTED',
    });
    // The probes of the context session and atomic() committed; the open() one was rolled back.
    const rows: Array<{ n: number | string }> = await t.dataSource.query(
      'SELECT count(*) AS n FROM example',
    );
    expect(Number(rows[0]?.n)).toBe(engine.name === 'postgres' ? 0 : 2);
  });
});

describe.each(engines)(
  'forFeature() repositories resolved from the container ($name)',
  (engine) => {
    let t: TestApp;
    let factory: SessionFactory;
    let context: SessionContext;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        imports: [TypeOrmContextModule.forFeature([Example])],
        providers: [RepositoryUser],
      });
      factory = t.app.get(SessionFactory);
      context = t.app.get(SessionContext);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    it('app.get(getRepositoryToken(Example)) and moduleRef.get(..., { strict: false }) return the context-aware repository', async () => {
      const injected = t.app.get(RepositoryUser).examples;
      const fromApp = t.app.get<Repository<Example>>(getRepositoryToken(Example));
      const fromModuleRef = t.app
        .get(ModuleRef)
        .get<Repository<Example>>(getRepositoryToken(Example), { strict: false });
      const seen = await within(
        HANG_MS,
        'queries through the repositories in a context',
        factory.runInNewContext(async () => {
          const session = context.session();
          await session.insert(Example, { text: 'context_session' });
          await fromApp.insert({ text: 'from_app' });
          await fromModuleRef.insert({ text: 'from_module_ref' });
          return {
            session: await txid(engine, session),
            fromApp: await txid(engine, fromApp.manager),
            fromModuleRef: await txid(engine, fromModuleRef.manager),
            rowsSeen: await fromApp.count(),
          };
        }),
      );
      expect(seen.session).not.toBeNull();
      expect(seen).toEqual({
        session: seen.session,
        fromApp: seen.session,
        fromModuleRef: seen.session,
        rowsSeen: 3,
      });
      expect(fromApp).toBe(injected);
      expect(fromModuleRef).toBe(injected);
      expect(await t.texts()).toEqual(['context_session', 'from_app', 'from_module_ref']);
    });
  },
);

/** The propagations that run without a transaction, and the options that shape only one. */
const WITHOUT_TRANSACTION = [Propagation.SUPPORTS, Propagation.NOT_SUPPORTED, Propagation.NEVER];
const TRANSACTION_SHAPING: Array<[string, TransactionOptions]> = [
  ['readOnly', { readOnly: true }],
  ['timeout', { timeout: 100 }],
  ['isolationLevel', { isolationLevel: 'SERIALIZABLE' }],
  ['retry', { retry: 2 }],
];
const COMBINATIONS = WITHOUT_TRANSACTION.flatMap((propagation) =>
  TRANSACTION_SHAPING.map(([option, extra]) => ({ propagation, option, extra })),
);

/**
 * Applies @Transactional(options) to a method that runs `body`, as a class declaration would.
 * Returns the decorated method, or the error the decorator threw as "Name: message".
 */
function decorate(
  options: TransactionOptions,
  body: () => Promise<unknown>,
): string | (() => Promise<unknown>) {
  class Probe {
    async run(): Promise<unknown> {
      return body();
    }
  }
  const descriptor = Object.getOwnPropertyDescriptor(Probe.prototype, 'run')!;
  try {
    Transactional(options)(Probe.prototype, 'run', descriptor);
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
  Object.defineProperty(Probe.prototype, 'run', descriptor);
  return () => new Probe().run();
}

describe.each(engines)(
  'options that a transaction-less propagation cannot honour ($name)',
  (engine) => {
    let t: TestApp;
    let factory: SessionFactory;
    let context: SessionContext;

    beforeAll(async () => {
      t = await createTestApp(engine);
      factory = t.app.get(SessionFactory);
      context = t.app.get(SessionContext);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    it('@Transactional() fails at decoration time with InvalidOptionError naming the option and the propagation', async () => {
      const write = () => context.session().insert(Example, { text: 'decorated_method_ran' });
      const decorated = COMBINATIONS.map(({ propagation, extra }) =>
        decorate({ propagation, ...extra }, write),
      );
      // Where the decorator accepted the options, the method runs (in a context of its own, as a
      // job's would: a `new` instance has no app of its own) and writes with the options dropped.
      for (const method of decorated) {
        if (typeof method !== 'function') continue;
        await within(HANG_MS, 'a decorated method', factory.runInNewContext(method));
      }
      expect(decorated).toEqual(
        COMBINATIONS.map(({ propagation, option }) =>
          expect.stringMatching(
            new RegExp(`^InvalidOptionError: (?=.*\\b${option}\\b)(?=.*\\b${propagation}\\b)`, 's'),
          ),
        ),
      );
      expect(await t.rows()).toBe(0);
    });

    it('sessionFactory.atomic() and sessionContext.atomic() reject with InvalidOptionError without running the block', async () => {
      let ran = 0;
      const block = async (manager: EntityManager) => {
        ran++;
        await manager.insert(Example, { text: 'must_not_run' });
      };
      const calls: Array<() => Promise<unknown>> = [
        () => factory.atomic(block, { propagation: Propagation.NOT_SUPPORTED, timeout: 100 }),
        () => context.atomic(block, { propagation: Propagation.NOT_SUPPORTED, timeout: 100 }),
        () => context.atomic(block, { propagation: Propagation.SUPPORTS, readOnly: true }),
        () =>
          factory.runInNewContext(() =>
            context.atomic(block, { propagation: Propagation.NOT_SUPPORTED, retry: 2 }),
          ),
        () =>
          factory.runInNewContext(() =>
            context.atomic(block, {
              propagation: Propagation.SUPPORTS,
              isolationLevel: 'SERIALIZABLE',
            }),
          ),
      ];
      const errors: string[] = [];
      for (const call of calls) {
        errors.push(
          await within(
            HANG_MS,
            'an atomic() call with an option its propagation cannot honour',
            Promise.resolve()
              .then(call)
              .then(
                () => 'no error',
                (error: Error) => `${error.name}: ${error.message}`,
              ),
          ),
        );
      }
      expect(errors).toEqual(calls.map(() => expect.stringMatching(/^InvalidOptionError: /)));
      expect(ran).toBe(0);
      expect(await t.rows()).toBe(0);
    });
  },
);
