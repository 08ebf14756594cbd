import { Controller, Get, Injectable, Module, Post } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
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
  type Variant,
  waitElsewhere,
} from '../shared.js';
import { inTransaction } from './baseline.js';
import { RequestTx, RequestTxInterceptor } from './request-tx.js';

/** Service B of the chain (request-scoped through RequestTx). */
@Injectable()
export class ItemService {
  constructor(private readonly tx: RequestTx) {}

  private async repo() {
    return (await this.tx.manager()).getRepository(BenchItem);
  }

  async readOne() {
    return (await this.repo()).findOneBy({ id: someId() });
  }

  async read() {
    return chainQueries.read(await this.repo());
  }

  async insert(name: string) {
    return chainQueries.insert(await this.repo(), name);
  }

  async check(id: number) {
    return chainQueries.check(await this.repo(), id);
  }

  async readById(id: number) {
    return (await this.repo()).findOneBy({ id });
  }

  /** /multi, provider 1. */
  async byId(id: number) {
    return multiQueries.byId(await this.repo(), id);
  }

  /** /deep: 20 nested calls on the request's one runner (no propagation to decide). */
  async descend(depth: number, id: number): Promise<DeepResult> {
    const row = await multiQueries.byId(await this.repo(), id);
    return deepLevel(row, depth > 1 ? await this.descend(depth - 1, id) : undefined);
  }

  /** Commits what the request did so far and gives the runner back. */
  commit() {
    return this.tx.finish(true);
  }
}

/** /multi, providers 2 and 3 (request-scoped through RequestTx). */
@Injectable()
export class CountService {
  constructor(private readonly tx: RequestTx) {}

  async count(id: number) {
    return multiQueries.count((await this.tx.manager()).getRepository(BenchItem), id);
  }
}

@Injectable()
export class RowsService {
  constructor(private readonly tx: RequestTx) {}

  async byIds(id: number) {
    return multiQueries.byIds((await this.tx.manager()).getRepository(BenchItem), id);
  }
}

/** Service A of the chain. */
@Injectable()
export class ChainService {
  constructor(private readonly items: ItemService) {}

  async run() {
    const read = await this.items.read();
    const id = await this.items.insert(rowName('c'));
    return { read, id, ...(await this.items.check(id)) };
  }
}

@Controller()
export class RequestScopeController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly items: ItemService,
    private readonly chain: ChainService,
    private readonly counts: CountService,
    private readonly rows: RowsService,
  ) {}

  @Get('noop')
  noop() {
    return { ok: true };
  }

  @Get('read')
  read() {
    return this.items.readOne();
  }

  @Post('write')
  async write() {
    const name = rowName('w');
    return { id: await this.items.insert(name), name };
  }

  @Get('chain')
  chainOfServices() {
    return this.chain.run();
  }

  /** One request-scoped runner cannot run queries in parallel: three runners of their own. */
  @Get('parallel')
  parallel() {
    return parallel(() => inTransaction(this.dataSource, sleepOn));
  }

  /** One write, an early commit through the holder, a wait, one read. */
  @Post('commit-then-wait')
  async commitThenWait() {
    const id = await this.items.insert(rowName('t'));
    await this.items.commit();
    await waitElsewhere();
    return this.items.readById(id);
  }

  /** The request's one runner, through three request-scoped providers. */
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

  /** One request-scoped runner is one transaction: ten runners of their own. */
  @Get('fanout')
  fanout() {
    return fanout(() => inTransaction(this.dataSource, pidOf));
  }
}

@Module({
  imports: [TypeOrmModule.forRoot(typeormOptions)],
  controllers: [RequestScopeController],
  providers: [
    RequestTx,
    ItemService,
    CountService,
    RowsService,
    ChainService,
    { provide: APP_INTERCEPTOR, useClass: RequestTxInterceptor },
  ],
})
class RequestScopeModule {}

const variant: Variant = { module: () => RequestScopeModule };
export default variant;
