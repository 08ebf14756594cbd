import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import {
  type DynamicModule,
  type LoggerService,
  type LogLevel,
  Module,
  type Provider,
  type Type,
} from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import {
  Args,
  Context,
  Field,
  GraphQLModule,
  Int,
  Mutation,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { Test } from '@nestjs/testing';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import DataLoader from 'dataloader';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import {
  SessionContext,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** The GraphQL servers the suite drives. */
export type DriverName = 'apollo' | 'apollo-fastify' | 'mercurius';

/** What the resolvers saw, for the assertions (one app at a time). */
export const probe = {
  engine: undefined as Engine | undefined,
  /** How many times the DataLoader's batch function ran, and with how many keys each time. */
  batches: [] as number[],
  /** What the late resolvers met when they wrote after the response (error names, or 'written'). */
  late: [] as string[],
  /** Tags of the slow mutations that started. */
  started: [] as string[],
};

/** Where a resolver's write landed: the transaction and connection it ran on. */
@ObjectType()
export class Probe {
  @Field() tag!: string;
  @Field() txid!: string;
  @Field() backend!: string;
}

/** Writes `tag` on `manager` and reports the transaction that holds the row. */
async function write(manager: EntityManager, tag: string): Promise<Probe> {
  await manager.insert(Example, { text: tag });
  const engine = probe.engine!;
  return {
    tag,
    txid: String(await txid(engine, manager)),
    backend: await backendId(engine, manager),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The operation's context as the resolvers use it (a DataLoader made on first use). */
interface OperationContext {
  loader?: DataLoader<string, Probe>;
}

@Resolver(() => Probe)
export class ProbeResolver {
  constructor(
    private readonly context: SessionContext,
    @InjectRepository(Example) private readonly examples: Repository<Example>,
  ) {}

  @Query(() => Probe)
  probe(@Args('tag') tag: string) {
    return write(this.context.session(), tag);
  }

  /** Several parents at once: their DataLoader fields load in one batch. */
  @Query(() => [Probe])
  async probes(@Args('tags', { type: () => [String] }) tags: string[]) {
    const written: Probe[] = [];
    for (const tag of tags) written.push(await write(this.context.session(), tag));
    return written;
  }

  @Query(() => String, { nullable: true })
  async fail(@Args('tag') tag: string): Promise<string> {
    await this.context.session().insert(Example, { text: tag });
    throw new Error(`refused ${tag}`);
  }

  /** Non-null: its error makes the whole `data` null while its siblings may still run. */
  @Query(() => String)
  async failNow(@Args('tag') tag: string): Promise<string> {
    await this.context.session().insert(Example, { text: tag });
    throw new Error(`refused ${tag}`);
  }

  /** Writes after `ms`: used to write after the operation's response was ready. */
  @Query(() => Probe, { nullable: true })
  async late(@Args('tag') tag: string, @Args('ms', { type: () => Int }) ms: number) {
    await sleep(ms);
    try {
      const written = await write(this.context.session(), tag);
      probe.late.push('written');
      return written;
    } catch (error) {
      probe.late.push((error as Error).name);
      throw error;
    }
  }

  @Mutation(() => Probe)
  write(@Args('tag') tag: string) {
    return write(this.context.session(), tag);
  }

  /** Writes, waits `ms`, writes again: a client may leave meanwhile. */
  @Mutation(() => Probe)
  async slowWrite(@Args('tag') tag: string, @Args('ms', { type: () => Int }) ms: number) {
    await this.context.session().insert(Example, { text: `${tag}:before` });
    probe.started.push(tag);
    await sleep(ms);
    return write(this.context.session(), tag);
  }

  @Mutation(() => String, { nullable: true })
  async writeFail(@Args('tag') tag: string): Promise<string> {
    await this.context.session().insert(Example, { text: tag });
    throw new Error(`refused ${tag}`);
  }

  /** Inserts `id` twice into a table whose unique constraint is checked at COMMIT (PostgreSQL). */
  @Mutation(() => Probe)
  async deferredTwice(@Args('tag') tag: string) {
    const session = this.context.session();
    await session.query('INSERT INTO gql_deferred (id) VALUES (1), (1)');
    return write(session, tag);
  }

  /** Returns a parent after `ms`, without writing: its fields resolve after that. */
  @Query(() => Probe, { nullable: true })
  async lateParent(@Args('tag') tag: string, @Args('ms', { type: () => Int }) ms: number) {
    await sleep(ms);
    return { tag, txid: '', backend: '' };
  }

  /** A field resolver that queries, in the operation's transaction. */
  @ResolveField(() => Probe)
  async field(@Parent() parent: Probe) {
    if (!parent.tag.startsWith('late')) return write(this.context.session(), `${parent.tag}:field`);
    try {
      const written = await write(this.context.session(), `${parent.tag}:field`);
      probe.late.push('written');
      return written;
    } catch (error) {
      probe.late.push((error as Error).name);
      throw error;
    }
  }

  /** A field resolved through a DataLoader: one batch for every parent of the operation. */
  @ResolveField(() => Probe)
  batched(@Parent() parent: Probe, @Context() context: OperationContext) {
    context.loader ??= new DataLoader((keys) => this.batch(keys));
    return context.loader.load(`${parent.tag}:batch`);
  }

  /** The batch function: one INSERT for every key, through the forFeature() repository. */
  private async batch(keys: readonly string[]): Promise<Probe[]> {
    probe.batches.push(keys.length);
    await this.examples.insert(keys.map((text) => ({ text })));
    const manager = this.examples.manager;
    const engine = probe.engine!;
    const [id, backend] = [String(await txid(engine, manager)), await backendId(engine, manager)];
    return keys.map((tag) => ({ tag, txid: id, backend }));
  }
}

/** The probe resolver and its repository, as a module (for GraphQLModule's `include`). */
@Module({ imports: [TypeOrmContextModule.forFeature([Example])], providers: [ProbeResolver] })
export class ProbeModule {}

/** Options of a GraphQL test app. */
export interface GraphqlAppOptions {
  driver: DriverName;
  poolSize?: number;
  context?: TypeOrmContextModuleOptions;
  /** `fieldResolverEnhancers` of the GraphQL module. */
  enhancers?: Array<'guards' | 'interceptors' | 'filters'>;
  /** More options of the GraphQL module (`allowBatchedHttpRequests`, `include`...). */
  graphql?: Record<string, unknown>;
  /** More providers (resolvers, an APP_INTERCEPTOR...). */
  providers?: Provider[];
  /** More modules. */
  imports?: Array<Type | DynamicModule>;
  /** The app's logger (default: none, or errors and warnings with TEST_LOG). */
  logger?: LoggerService;
}

/** A GraphQL test app with a helper that posts one operation (or a batch). */
export interface GraphqlApp extends TestApp {
  gql(query: string, variables?: Record<string, unknown>): Promise<GraphqlResponse>;
}

/** The JSON body of a GraphQL response. */
export interface GraphqlResponse {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

function graphqlModule(options: GraphqlAppOptions) {
  const common = {
    autoSchemaFile: true as const,
    fieldResolverEnhancers: options.enhancers ?? [],
    ...options.graphql,
  };
  if (options.driver === 'mercurius') {
    return GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, ...common });
  }
  return GraphQLModule.forRoot<ApolloDriverConfig>({
    driver: ApolloDriver,
    ...common,
    graphiql: false,
    includeStacktraceInErrorResponses: false,
  });
}

/** Builds and starts a GraphQL app on `engine` with the probe resolvers. */
export async function createGraphqlApp(
  engine: Engine,
  options: GraphqlAppOptions,
): Promise<GraphqlApp> {
  probe.engine = engine;
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine, options.poolSize ?? 10)),
      TypeOrmContextModule.forRoot(options.context ?? {}),
      ProbeModule,
      graphqlModule(options),
      ...(options.imports ?? []),
    ],
    providers: options.providers ?? [],
  }).compile();
  const logger =
    options.logger ?? (process.env.TEST_LOG ? (['error', 'warn'] as LogLevel[]) : false);
  const fastify = options.driver !== 'apollo';
  const app = fastify
    ? moduleRef.createNestApplication(new FastifyAdapter(), { logger })
    : moduleRef.createNestApplication({ logger });
  await app.init();
  if (fastify) await app.getHttpAdapter().getInstance().ready();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  const t = wrap(app, engine, dataSource);
  return {
    ...t,
    gql: async (query, variables) => {
      const response = await t.http().post('/graphql').send({ query, variables });
      return response.body as GraphqlResponse;
    },
  };
}

/** Every row of `example` with the transaction that wrote it (PostgreSQL's `xmin`). */
export async function rowsWithXmin(
  dataSource: DataSource,
): Promise<Array<{ text: string; xmin: string }>> {
  return dataSource.query('SELECT text, xmin::text AS xmin FROM example ORDER BY text');
}
