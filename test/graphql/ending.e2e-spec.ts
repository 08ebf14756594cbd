import {
  ConflictException,
  type ExecutionContext,
  Injectable,
  type LoggerService,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  UseInterceptors,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Args, GraphQLSchemaHost, Mutation, Resolver } from '@nestjs/graphql';
import { type ExecutionResult, graphql, GraphQLError } from 'graphql';
import {
  AutoCommitInterceptor,
  InvalidOptionError,
  openRequestContext,
  Propagation,
  SessionContext,
  SessionContextMiddleware,
  Transactional,
} from '../../src/index.js';
import { resolveModuleOptions } from '../../src/typeorm-context.options.js';
import { closeApp } from '../correctness/support-b.js';
import { engines, type Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  createGraphqlApp,
  type DriverName,
  type GraphqlApp,
  type GraphqlAppOptions,
  probe,
} from './graphql-app.js';

/** What `beforeCommit` does: refuse the commit while `refuse` is set. */
const hooks = { refuse: false };
const beforeCommit = () => {
  if (hooks.refuse) throw new Error('beforeCommit refused');
};

/** A mutation that runs in a NESTED block: its failure rolls back to its savepoint only. */
@Resolver()
class NestedResolver {
  constructor(private readonly context: SessionContext) {}

  @Mutation(() => String, { nullable: true })
  @Transactional({ propagation: Propagation.NESTED })
  async nestedFail(@Args('tag') tag: string): Promise<string> {
    await this.context.session().insert(Example, { text: tag });
    throw new Error(`refused ${tag}`);
  }
}

/** A mutation whose @Transactional() (REQUIRED) block fails: the transaction it joined is rollback-only. */
@Resolver()
class RequiredResolver {
  constructor(private readonly context: SessionContext) {}

  @Mutation(() => String, { nullable: true })
  @Transactional()
  async requiredFail(@Args('tag') tag: string): Promise<string> {
    await this.context.session().insert(Example, { text: tag });
    throw new Error(`refused ${tag}`);
  }
}

/** With `middleware: false`: the context middleware mounted by the app on the GraphQL route only. */
@Module({})
class GraphqlRouteContext implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(SessionContextMiddleware).forRoutes('graphql');
  }
}

/** A resolver that asks for auto-commit itself (with `autoCommit: false`). */
@Resolver()
@UseInterceptors(AutoCommitInterceptor)
class CommittingResolver {
  constructor(private readonly context: SessionContext) {}

  @Mutation(() => Boolean)
  async writeCommitted(@Args('tag') tag: string) {
    await this.context.session().insert(Example, { text: tag });
    return true;
  }
}

/** Maps commit failures as the docs' example does, and rolls back whatever says `dryRun`. */
@Injectable()
class MappingAutoCommit extends AutoCommitInterceptor {
  static mapTo: 'graphql' | 'http' = 'graphql';

  protected override shouldCommit(context: ExecutionContext): boolean {
    const args = context.getArgs<[unknown, Record<string, unknown>]>()[1];
    return !String(args?.tag ?? '').startsWith('dry');
  }

  protected override onError(error: unknown): unknown {
    if (!(error instanceof Error) || error.message !== 'beforeCommit refused') return error;
    if (MappingAutoCommit.mapTo === 'http') return new ConflictException('try again');
    return new GraphQLError('not saved, try again', { extensions: { code: 'RETRY' } });
  }
}

/** Keeps the warnings the app logs. */
class Warnings implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.lines.push(String(message));
  }
}

const DRIVERS: DriverName[] = ['apollo', 'apollo-fastify', 'mercurius'];
const cases = engines.flatMap((engine) => DRIVERS.map((driver) => ({ engine, driver })));

describe.each(cases)(
  'GraphQL: how an operation ends ($driver, $engine.name)',
  ({ engine, driver }: { engine: Engine; driver: DriverName }) => {
    const apps: GraphqlApp[] = [];
    async function start(options: Omit<GraphqlAppOptions, 'driver'> = {}): Promise<GraphqlApp> {
      const t = await createGraphqlApp(engine, { driver, ...options });
      apps.push(t);
      return t;
    }

    beforeEach(() => {
      hooks.refuse = false;
      probe.late = [];
    });
    afterEach(async () => {
      for (const t of apps.splice(0)) {
        await t.expectClean();
        await closeApp(t, engine);
      }
    });

    it('a failed COMMIT becomes an error of the response, with no data, and nothing stays', async () => {
      const t = await start({ context: { beforeCommit } });
      hooks.refuse = true;
      const body = await t.gql('mutation { write(tag: "lost") { txid field { txid } } }');
      expect(body.data).toBeNull();
      expect(body.errors).toEqual([
        {
          message: 'Internal server error: the changes of this operation were not committed.',
          extensions: { code: 'INTERNAL_SERVER_ERROR' },
        },
      ]);
      expect(await t.rows()).toBe(0);
      hooks.refuse = false;
      const next = await t.gql('mutation { write(tag: "kept") { txid } }');
      expect(next.errors).toBeUndefined();
      expect(await t.texts()).toEqual(['kept']);
    });

    if (engine.name === 'postgres') {
      it('a deferred constraint that fails at COMMIT becomes an error of the response', async () => {
        const t = await start();
        await t.dataSource.query(
          'CREATE TABLE IF NOT EXISTS gql_deferred (id int, CONSTRAINT gql_deferred_once UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)',
        );
        await t.dataSource.query('DELETE FROM gql_deferred');
        const body = await t.gql('mutation { deferredTwice(tag: "deferred") { txid } }');
        expect(body.data).toBeNull();
        expect(body.errors).toHaveLength(1);
        expect(body.errors![0]!.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
        expect(await t.rows()).toBe(0);
        expect(await t.dataSource.query('SELECT * FROM gql_deferred')).toEqual([]);
      });
    }

    it('commitPartial: a result with data and errors commits; one without data rolls back', async () => {
      const t = await start({ context: { graphql: { commitPartial: true } } });
      const partial = await t.gql('{ ok: probe(tag: "ok") { txid } bad: fail(tag: "bad") }');
      expect(partial.data).toMatchObject({ ok: { txid: expect.any(String) }, bad: null });
      expect(partial.errors?.[0]?.message).toBe('refused bad');
      // The failing field's own write is part of the committed transaction too.
      expect(await t.texts()).toEqual(['bad', 'ok']);
      await t.dataSource.query('DELETE FROM example');
      const empty = await t.gql('{ ok: probe(tag: "ok") { txid } now: failNow(tag: "now") }');
      expect(empty.data).toBeNull();
      expect(await t.rows()).toBe(0);
    });

    it('commitPartial with a NESTED mutation: only the failing mutation is rolled back', async () => {
      const t = await start({
        context: { graphql: { commitPartial: true } },
        providers: [NestedResolver],
      });
      const body = await t.gql(
        'mutation { one: write(tag: "one") { txid } two: nestedFail(tag: "two") three: write(tag: "three") { txid } }',
      );
      expect(body.errors?.map((error) => error.message)).toEqual(['refused two']);
      expect(await t.texts()).toEqual(['one', 'three']);
    });

    it('commitPartial with a failing REQUIRED block: the commit fails, the response says so', async () => {
      const t = await start({
        context: { graphql: { commitPartial: true } },
        providers: [RequiredResolver],
      });
      const body = await t.gql(
        'mutation { one: write(tag: "one") { txid } two: requiredFail(tag: "two") }',
      );
      expect(body.data).toBeNull();
      expect(body.errors?.map((error) => error.message)).toEqual([
        'refused two',
        'Internal server error: the changes of this operation were not committed.',
      ]);
      expect(await t.rows()).toBe(0);
    });

    it('middleware: false with SessionContextMiddleware on the GraphQL route only', async () => {
      const t = await start({ context: { middleware: false }, imports: [GraphqlRouteContext] });
      const body = await t.gql(`mutation {
      one: write(tag: "m1") { txid field { txid } }
      two: write(tag: "m2") { txid batched { txid } }
    }`);
      expect(body.errors).toBeUndefined();
      expect(new Set(JSON.stringify(body.data).match(/"txid":"[^"]*"/g)).size).toBe(1);
      expect(await t.texts()).toEqual(['m1', 'm1:field', 'm2', 'm2:batch']);
    });

    it('autoCommit: false rolls an operation back unless a resolver has the interceptor', async () => {
      const t = await start({ context: { autoCommit: false }, providers: [CommittingResolver] });
      const plain = await t.gql('mutation { write(tag: "rolled back") { txid field { txid } } }');
      expect(plain.errors).toBeUndefined();
      expect(await t.rows()).toBe(0);
      const committed = await t.gql(
        'mutation { writeCommitted(tag: "committed") other: write(tag: "with it") { txid } }',
      );
      expect(committed.errors).toBeUndefined();
      expect(await t.texts()).toEqual(['committed', 'with it']);
    });

    it("the interceptor's shouldCommit() and onError() decide for the operation", async () => {
      const t = await start({
        context: { autoCommit: false, beforeCommit },
        providers: [{ provide: APP_INTERCEPTOR, useClass: MappingAutoCommit }],
      });
      const dry = await t.gql('mutation { write(tag: "dry run") { txid } }');
      expect(dry.errors).toBeUndefined();
      expect(await t.rows()).toBe(0);
      hooks.refuse = true;
      MappingAutoCommit.mapTo = 'graphql';
      const mapped = await t.gql('mutation { write(tag: "refused") { txid } }');
      expect(mapped).toEqual({
        data: null,
        errors: [{ message: 'not saved, try again', extensions: { code: 'RETRY' } }],
      });
      MappingAutoCommit.mapTo = 'http';
      const conflict = await t.gql('mutation { write(tag: "refused") { txid } }');
      expect(conflict.errors).toEqual([{ message: 'try again', extensions: { code: 'CONFLICT' } }]);
      expect(await t.rows()).toBe(0);
    });

    it('graphql: false leaves each root resolver its own unit, without a warning', async () => {
      const warnings = new Warnings();
      const t = await start({ context: { graphql: false }, logger: warnings });
      const body = await t.gql('{ probe(tag: "alone") { txid field { txid } } }');
      expect(body.errors?.[0]?.message).toMatch(/The session context has ended/);
      expect(warnings.lines).toEqual([]);
    });
  },
);

describe.each(engines)('GraphQL: options and a driver without hooks ($name)', (engine) => {
  it('a wrong graphql option is refused, saying what it accepts', () => {
    const resolve = (graphql: unknown) => () => resolveModuleOptions({ graphql } as never);
    expect(resolve({ commitPartial: 'yes' })).toThrow(InvalidOptionError);
    expect(resolve({ commitPartial: 'yes' })).toThrow(/graphql\.commitPartial.*true or false/s);
    expect(resolve({ comitPartial: true })).toThrow(/'commitPartial' \(a typo\?\)/);
    expect(resolve(true)).toThrow(/false or \{ commitPartial\?: boolean \}/);
    expect(resolveModuleOptions({}).graphql).toEqual({ commitPartial: false });
    expect(resolveModuleOptions({ graphql: false }).graphql).toBe(false);
  });

  it('the first root resolver claims the request unit, with one warning', async () => {
    const warnings = new Warnings();
    const t = await createGraphqlApp(engine, { driver: 'apollo', logger: warnings });
    try {
      const { schema } = t.app.get(GraphQLSchemaHost);
      // What a driver this library has no hooks for does: execute in the HTTP request's context.
      const serve = (source: string) =>
        new Promise<ExecutionResult>((resolve) =>
          openRequestContext(undefined, { once: () => undefined }, () => {
            void graphql({ schema, source, contextValue: {} }).then(resolve);
          }),
        );
      const first = await serve('{ probe(tag: "a") { txid field { txid } } }');
      expect(first.errors?.[0]?.message).toMatch(/The session context has ended/);
      expect(await t.texts()).toEqual(['a']); // committed alone, when its resolver returned
      await serve('{ probe(tag: "b") { txid } }');
      expect(warnings.lines).toHaveLength(1);
      expect(warnings.lines[0]).toMatch(/has no unit of work of its own/);
      await t.expectClean();
    } finally {
      await closeApp(t, engine);
    }
  });
});
