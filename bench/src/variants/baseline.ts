import { Controller, Get, Injectable, Module, Post, type Provider } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
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

/** No context library: every handler that needs the database runs its own QueryRunner transaction. */
export async function inTransaction<T>(
  dataSource: DataSource,
  work: (manager: EntityManager) => Promise<T>,
): Promise<T> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  await runner.startTransaction();
  try {
    const result = await work(runner.manager);
    await runner.commitTransaction();
    return result;
  } catch (error) {
    await runner.rollbackTransaction();
    throw error;
  } finally {
    await runner.release();
  }
}

/** Service B of the chain: the manager is threaded through by hand. */
@Injectable()
export class ItemService {
  read(manager: EntityManager) {
    return chainQueries.read(manager.getRepository(BenchItem));
  }
  insert(manager: EntityManager, name: string) {
    return chainQueries.insert(manager.getRepository(BenchItem), name);
  }
  check(manager: EntityManager, id: number) {
    return chainQueries.check(manager.getRepository(BenchItem), id);
  }
  /** /multi, provider 1. */
  byId(manager: EntityManager, id: number) {
    return multiQueries.byId(manager.getRepository(BenchItem), id);
  }
  /** /deep: the one transaction's manager threaded through 20 calls. */
  async descend(manager: EntityManager, depth: number, id: number): Promise<DeepResult> {
    const row = await multiQueries.byId(manager.getRepository(BenchItem), id);
    return deepLevel(row, depth > 1 ? await this.descend(manager, depth - 1, id) : undefined);
  }
}

/** /multi, provider 2. */
@Injectable()
export class CountService {
  count(manager: EntityManager, id: number) {
    return multiQueries.count(manager.getRepository(BenchItem), id);
  }
}

/** /multi, provider 3. */
@Injectable()
export class RowsService {
  byIds(manager: EntityManager, id: number) {
    return multiQueries.byIds(manager.getRepository(BenchItem), id);
  }
}

/** Service A of the chain. */
@Injectable()
export class ChainService {
  constructor(private readonly items: ItemService) {}

  async run(manager: EntityManager) {
    const read = await this.items.read(manager);
    const id = await this.items.insert(manager, rowName('c'));
    return { read, id, ...(await this.items.check(manager, id)) };
  }
}

@Controller()
export class BaselineController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly chain: ChainService,
    private readonly items: ItemService,
    private readonly counts: CountService,
    private readonly rows: RowsService,
  ) {}

  @Get('noop')
  noop() {
    return { ok: true };
  }

  @Get('read')
  read() {
    return inTransaction(this.dataSource, (manager) =>
      manager.getRepository(BenchItem).findOneBy({ id: someId() }),
    );
  }

  @Post('write')
  write() {
    const name = rowName('w');
    return inTransaction(this.dataSource, async (manager) => ({
      id: await chainQueries.insert(manager.getRepository(BenchItem), name),
      name,
    }));
  }

  @Get('chain')
  chainOfServices() {
    return inTransaction(this.dataSource, (manager) => this.chain.run(manager));
  }

  @Get('parallel')
  parallel() {
    return parallel(() => inTransaction(this.dataSource, sleepOn));
  }

  /** One write committed, a wait elsewhere, one read: a connection only while each runs. */
  @Post('commit-then-wait')
  async commitThenWait() {
    const id = await inTransaction(this.dataSource, (manager) =>
      chainQueries.insert(manager.getRepository(BenchItem), rowName('t')),
    );
    await waitElsewhere();
    return inTransaction(this.dataSource, (manager) =>
      manager.getRepository(BenchItem).findOneBy({ id }),
    );
  }

  /** One QueryRunner transaction, its manager threaded through three providers. */
  @Get('multi')
  multi() {
    return inTransaction(this.dataSource, (manager) =>
      multi(
        (id) => this.items.byId(manager, id),
        (id) => this.counts.count(manager, id),
        (id) => this.rows.byIds(manager, id),
      ),
    );
  }

  @Get('deep')
  deep() {
    return inTransaction(this.dataSource, (manager) =>
      this.items.descend(manager, DEPTH, someId()),
    );
  }

  /** Ten QueryRunner transactions at once. */
  @Get('fanout')
  fanout() {
    return fanout(() => inTransaction(this.dataSource, pidOf));
  }
}

/** The baseline app; `extra` adds providers (context-floor adds its interceptor). */
export function baselineModule(extra: Provider[] = []) {
  @Module({
    imports: [TypeOrmModule.forRoot(typeormOptions)],
    controllers: [BaselineController],
    providers: [ItemService, CountService, RowsService, ChainService, ...extra],
  })
  class BaselineModule {}
  return BaselineModule;
}

const variant: Variant = { module: () => baselineModule() };
export default variant;
