import { Controller, Get, Injectable, Module, Post } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ClsPluginTransactional,
  Propagation,
  TransactionHost,
  Transactional,
} from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { ClsModule } from 'nestjs-cls';
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

type Host = TransactionHost<TransactionalAdapterTypeOrm>;

/** Service B of the chain: each method joins the caller's transaction. */
@Injectable()
export class ItemService {
  constructor(private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>) {}

  private get repo() {
    return this.txHost.tx.getRepository(BenchItem);
  }

  @Transactional()
  readOne() {
    return this.repo.findOneBy({ id: someId() });
  }

  @Transactional()
  read() {
    return chainQueries.read(this.repo);
  }

  @Transactional()
  readById(id: number) {
    return this.repo.findOneBy({ id });
  }

  @Transactional()
  insert(name: string) {
    return chainQueries.insert(this.repo, name);
  }

  @Transactional()
  check(id: number) {
    return chainQueries.check(this.repo, id);
  }

  /** /multi, provider 1 (joins the handler's @Transactional()). */
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
export class CountService {
  constructor(private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>) {}

  count(id: number) {
    return multiQueries.count(this.txHost.tx.getRepository(BenchItem), id);
  }
}

/** /multi, provider 3. */
@Injectable()
export class RowsService {
  constructor(private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>) {}

  byIds(id: number) {
    return multiQueries.byIds(this.txHost.tx.getRepository(BenchItem), id);
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
export class ClsController {
  constructor(
    private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>,
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

  @Get('parallel')
  parallel() {
    const host: Host = this.txHost;
    return parallel(() => host.withTransaction(Propagation.RequiresNew, () => sleepOn(host.tx)));
  }

  /** One write in a @Transactional method (committed when it returns), a wait, one read. */
  @Post('commit-then-wait')
  async commitThenWait() {
    const id = await this.items.insert(rowName('t'));
    await waitElsewhere();
    return this.items.readById(id);
  }

  /** Three providers in one transaction: the handler is @Transactional(). */
  @Get('multi')
  @Transactional()
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

  /** Ten independent transactions at once (RequiresNew). */
  @Get('fanout')
  fanout() {
    const host: Host = this.txHost;
    return fanout(() => host.withTransaction(Propagation.RequiresNew, () => pidOf(host.tx)));
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot(typeormOptions),
    ClsModule.forRoot({
      global: true,
      middleware: { mount: true },
      plugins: [
        new ClsPluginTransactional({
          adapter: new TransactionalAdapterTypeOrm({ dataSourceToken: DataSource }),
        }),
      ],
    }),
  ],
  controllers: [ClsController],
  providers: [ItemService, CountService, RowsService, ChainService],
})
class ClsAppModule {}

const variant: Variant = { module: () => ClsAppModule };
export default variant;
