import { Controller, Get, Inject, Injectable, Module, Post } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';

// The library under test, from the root build (`npm run build`) exactly as published, or (the
// `previous` variant) the build of another commit that `BENCH_PREVIOUS` named.
type Library = typeof import('../../../dist/index.js');
const library = process.env.BENCH_LIBRARY === 'dist-previous' ? 'dist-previous' : 'dist';
const { SessionContext, SessionFactory, Transactional, TypeOrmContextModule } = (await import(
  `../../../${library}/index.js`
)) as Library;
type SessionContext = InstanceType<Library['SessionContext']>;
type SessionFactory = InstanceType<Library['SessionFactory']>;
import {
  BenchItem,
  chainQueries,
  parallel,
  rowName,
  sleepOn,
  someId,
  typeormOptions,
  type Variant,
  waitElsewhere,
} from '../shared.js';

/** Service B of the chain: each method joins the caller's transaction. */
@Injectable()
export class ItemService {
  constructor(@Inject(SessionContext) private readonly sessions: SessionContext) {}

  private get repo() {
    return this.sessions.session().getRepository(BenchItem);
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
}

/** Service A of the chain. */
@Injectable()
export class ChainService {
  constructor(private readonly items: ItemService) {}

  @Transactional()
  async run() {
    const read = await this.items.read();
    const id = await this.items.insert(rowName('c'));
    return { read, id, ...(await this.items.check(id)) };
  }
}

@Controller()
export class ContextController {
  constructor(
    @Inject(SessionContext) private readonly sessions: SessionContext,
    @Inject(SessionFactory) private readonly factory: SessionFactory,
    private readonly chain: ChainService,
  ) {}

  @Get('noop')
  noop() {
    return { ok: true };
  }

  /** Auto-commit: the request's lazy session, committed by the interceptor. */
  @Get('read')
  read() {
    return this.sessions.session().getRepository(BenchItem).findOneBy({ id: someId() });
  }

  @Post('write')
  async write() {
    const name = rowName('w');
    return {
      id: await chainQueries.insert(this.sessions.session().getRepository(BenchItem), name),
      name,
    };
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
    const items = this.sessions.session().getRepository(BenchItem);
    const id = await chainQueries.insert(items, rowName('t'));
    await this.sessions.commit();
    await waitElsewhere();
    return items.findOneBy({ id });
  }
}

@Module({
  imports: [TypeOrmModule.forRoot(typeormOptions), TypeOrmContextModule.forRoot()],
  controllers: [ContextController],
  providers: [ItemService, ChainService],
})
class ContextModule {}

const variant: Variant = { module: () => ContextModule };
export default variant;
