import { Controller, Get, Inject, Injectable, Module, Post } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';

// The library under test, from the root build (`npm run build`) exactly as published, or (the
// `previous*` variants) the build of another commit that `BENCH_PREVIOUS` named.
type Library = typeof import('../../../dist/index.js');
const library = process.env.BENCH_LIBRARY === 'dist-previous' ? 'dist-previous' : 'dist';
const { InjectSession, SessionContext, SessionFactory, Transactional, TypeOrmContextModule } =
  (await import(`../../../${library}/index.js`)) as Library;
type SessionContext = InstanceType<Library['SessionContext']>;
type SessionFactory = InstanceType<Library['SessionFactory']>;
import {
  BenchItem,
  chainQueries,
  DEPTH,
  deepLevel,
  type DeepResult,
  fanout,
  multi,
  multiQueries,
  parallel,
  pidOf,
  rowName,
  sleepOn,
  someId,
  typeormOptions,
  waitElsewhere,
} from '../shared.js';

/**
 * How the services of a library variant reach the database: what they inject and how they get a
 * `Repository<BenchItem>` from it. The first three are the ways the README shows; the fourth is
 * plain TypeORM joined by `plainTypeorm: 'join'` (what a user migrating from typeorm-transactional
 * gets).
 */
export interface LibraryPath<T> {
  /** The constructor parameter decorator of every service and of the controller. */
  inject: ParameterDecorator;
  /** From the injected object to the repository of the current session. */
  repo(injected: T): Repository<BenchItem>;
  /** Modules the app imports besides forRoot(). */
  imports: unknown[];
  /** Options of `TypeOrmContextModule.forRoot()` (none: the defaults). */
  options?: Parameters<Library['TypeOrmContextModule']['forRoot']>[0];
}

/** `sessionContext.session().getRepository(BenchItem)`. */
export const sessionPath: LibraryPath<SessionContext> = {
  inject: Inject(SessionContext),
  repo: (sessions) => sessions.session().getRepository(BenchItem),
  imports: [],
};

/** `TypeOrmContextModule.forFeature([BenchItem])` + `@InjectRepository(BenchItem)`. */
export const repositoriesPath: LibraryPath<Repository<BenchItem>> = {
  inject: InjectRepository(BenchItem),
  repo: (repository) => repository,
  imports: [TypeOrmContextModule.forFeature([BenchItem])],
};

/**
 * Plain TypeORM: `TypeOrmModule.forFeature([BenchItem])` repositories of `@nestjs/typeorm` (they
 * hold the DataSource's own manager), joined to the unit of work by `plainTypeorm: 'join'`.
 */
export const plainJoinPath: LibraryPath<Repository<BenchItem>> = {
  inject: InjectRepository(BenchItem),
  repo: (repository) => repository,
  imports: [TypeOrmModule.forFeature([BenchItem])],
  options: { plainTypeorm: 'join' },
};

/** `@InjectSession()`: an EntityManager that is always the current session. */
export const injectSessionPath: LibraryPath<EntityManager> = {
  inject: InjectSession(),
  repo: (session) => session.getRepository(BenchItem),
  imports: [],
};

/** The app of a library variant: identical code, only `path` differs. */
export function libraryModule<T>(path: LibraryPath<T>) {
  /** Service B of the chain: each method joins the caller's transaction. */
  @Injectable()
  class ItemService {
    constructor(@path.inject private readonly source: T) {}

    get repo() {
      return path.repo(this.source);
    }

    @Transactional()
    read() {
      return chainQueries.read(this.repo);
    }

    @Transactional()
    insert(name: string) {
      return chainQueries.insert(this.repo, name);
    }

    @Transactional()
    check(id: number) {
      return chainQueries.check(this.repo, id);
    }

    /** /multi, provider 1 (no decorator: the request's session). */
    byId(id: number) {
      return multiQueries.byId(this.repo, id);
    }

    /** /deep: 20 nested REQUIRED calls, one SELECT by primary key each. */
    @Transactional()
    async descend(depth: number, id: number): Promise<DeepResult> {
      const row = await multiQueries.byId(this.repo, id);
      return deepLevel(row, depth > 1 ? await this.descend(depth - 1, id) : undefined);
    }
  }

  /** /multi, provider 2. */
  @Injectable()
  class CountService {
    constructor(@path.inject private readonly source: T) {}

    count(id: number) {
      return multiQueries.count(path.repo(this.source), id);
    }
  }

  /** /multi, provider 3. */
  @Injectable()
  class RowsService {
    constructor(@path.inject private readonly source: T) {}

    byIds(id: number) {
      return multiQueries.byIds(path.repo(this.source), id);
    }
  }

  /** Service A of the chain. */
  @Injectable()
  class ChainService {
    constructor(private readonly items: ItemService) {}

    @Transactional()
    async run() {
      const read = await this.items.read();
      const id = await this.items.insert(rowName('c'));
      return { read, id, ...(await this.items.check(id)) };
    }
  }

  @Controller()
  class LibraryController {
    constructor(
      @path.inject private readonly source: T,
      @Inject(SessionContext) private readonly sessions: SessionContext,
      @Inject(SessionFactory) private readonly factory: SessionFactory,
      private readonly items: ItemService,
      private readonly counts: CountService,
      private readonly rows: RowsService,
      private readonly chain: ChainService,
    ) {}

    @Get('noop')
    noop() {
      return { ok: true };
    }

    /** Auto-commit: the request's lazy session, committed by the interceptor. */
    @Get('read')
    read() {
      return path.repo(this.source).findOneBy({ id: someId() });
    }

    @Post('write')
    async write() {
      const name = rowName('w');
      return { id: await chainQueries.insert(path.repo(this.source), name), name };
    }

    @Get('chain')
    chainOfServices() {
      return this.chain.run();
    }

    @Get('parallel')
    parallel() {
      return parallel(() => this.factory.atomic(sleepOn));
    }

    /** One write, commit(), a wait elsewhere, one read (committed by the interceptor). */
    @Post('commit-then-wait')
    async commitThenWait() {
      const id = await chainQueries.insert(path.repo(this.source), rowName('t'));
      await this.sessions.commit();
      await waitElsewhere();
      return path.repo(this.source).findOneBy({ id });
    }

    /** Three providers, no decorator: the request's one session and transaction. */
    @Get('multi')
    multi() {
      return multi(
        (id) => this.items.byId(id),
        (id) => this.counts.count(id),
        (id) => this.rows.byIds(id),
      );
    }

    @Get('deep')
    deep() {
      return this.items.descend(DEPTH, someId());
    }

    /** Ten independent sessions at once, each one query (the repository follows the session). */
    @Get('fanout')
    fanout() {
      return fanout(() => this.factory.atomic(() => pidOf(path.repo(this.source))));
    }
  }

  @Module({
    imports: [
      TypeOrmModule.forRoot(typeormOptions),
      TypeOrmContextModule.forRoot(path.options),
      ...(path.imports as never[]),
    ],
    controllers: [LibraryController],
    providers: [ItemService, CountService, RowsService, ChainService],
  })
  class LibraryModule {}
  return LibraryModule;
}
