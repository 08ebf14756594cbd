import { Controller, Get, Injectable, Module, Post } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
// The library under test, from the root build (`npm run build`), exactly as published.
import { SessionContext, SessionFactory, Transactional, TypeOrmContextModule } from '../../../dist/index.js';
import {
  BenchItem,
  chainQueries,
  parallel,
  rowName,
  sleepOn,
  someId,
  typeormOptions,
  type Variant,
} from '../shared.js';

/** Service B of the chain: each method joins the caller's transaction. */
@Injectable()
export class ItemService {
  constructor(private readonly sessions: SessionContext) {}

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
    private readonly sessions: SessionContext,
    private readonly factory: SessionFactory,
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
    return { id: await chainQueries.insert(this.sessions.session().getRepository(BenchItem), name), name };
  }

  @Get('chain')
  chainOfServices() {
    return this.chain.run();
  }

  @Get('parallel')
  parallel() {
    return parallel(() => this.factory.atomic(sleepOn));
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
