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
  parallel,
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
  providers: [ItemService, ChainService],
})
class TransactionalAppModule {}

const variant: Variant = {
  prepare: () => {
    initializeTransactionalContext({ storageDriver: StorageDriver.AUTO });
  },
  module: () => TransactionalAppModule,
};
export default variant;
