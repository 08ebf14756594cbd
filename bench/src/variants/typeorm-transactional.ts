import { Controller, Get, Injectable, Module, Post } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions, type Repository } from 'typeorm';
import {
  addTransactionalDataSource,
  initializeTransactionalContext,
  Propagation,
  runInTransaction,
  StorageDriver,
  Transactional,
} from 'typeorm-transactional';
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

/** Service B of the chain: the patched repository joins the caller's transaction. */
@Injectable()
export class ItemService {
  constructor(@InjectRepository(BenchItem) private readonly repo: Repository<BenchItem>) {}

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

  /** /fanout: one independent transaction. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  pid() {
    return pidOf(this.repo);
  }
}

/** /multi, provider 2. */
@Injectable()
export class CountService {
  constructor(@InjectRepository(BenchItem) private readonly repo: Repository<BenchItem>) {}

  count(id: number) {
    return multiQueries.count(this.repo, id);
  }
}

/** /multi, provider 3. */
@Injectable()
export class RowsService {
  constructor(@InjectRepository(BenchItem) private readonly repo: Repository<BenchItem>) {}

  byIds(id: number) {
    return multiQueries.byIds(this.repo, id);
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
export class TransactionalController {
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

  @Get('parallel')
  parallel() {
    return parallel(() =>
      runInTransaction(() => sleepOn(this.dataSource.manager), {
        propagation: Propagation.REQUIRES_NEW,
      }),
    );
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

  /** Ten independent transactions at once (REQUIRES_NEW). */
  @Get('fanout')
  fanout() {
    return fanout(() => this.items.pid());
  }
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      useFactory: () => typeormOptions,
      dataSourceFactory: async (options?: DataSourceOptions) =>
        addTransactionalDataSource(new DataSource(options!)),
    }),
    TypeOrmModule.forFeature([BenchItem]),
  ],
  controllers: [TransactionalController],
  providers: [ItemService, CountService, RowsService, ChainService],
})
class TransactionalAppModule {}

const variant: Variant = {
  prepare: () => {
    initializeTransactionalContext({ storageDriver: StorageDriver.AUTO });
  },
  module: () => TransactionalAppModule,
};
export default variant;
