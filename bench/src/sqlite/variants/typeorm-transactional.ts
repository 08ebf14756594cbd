import { Controller, Get, Injectable, Module, Post, Query } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions, type Repository } from 'typeorm';
import {
  addTransactionalDataSource,
  initializeTransactionalContext,
  StorageDriver,
  Transactional,
} from 'typeorm-transactional';
import type { Variant } from '../../shared.js';
import { BenchItem, mixedAsk, named, readRow, sqliteOptions, writeRow } from '../sqlite-shared.js';

/** The service: `@Transactional()` on each method, the injected (patched) repository. */
@Injectable()
export class TransactionalSqliteService {
  constructor(@InjectRepository(BenchItem) private readonly repo: Repository<BenchItem>) {}

  @Transactional()
  read() {
    return readRow(this.repo);
  }

  @Transactional()
  write(name: string, options?: { fail: boolean; io: boolean }) {
    return writeRow(this.repo, name, options);
  }
}

/** typeorm-transactional: `initializeTransactionalContext()` + `addTransactionalDataSource()`. */
@Controller()
export class TransactionalSqliteController {
  constructor(private readonly items: TransactionalSqliteService) {}

  @Get('read')
  read() {
    return this.items.read();
  }

  @Post('write')
  write(@Query('n') n?: string) {
    return this.items.write(named(n));
  }

  @Post('mixed')
  mixed(@Query('n') n?: string, @Query('fail') fail?: string) {
    const asked = mixedAsk(n, fail);
    return this.items.write(asked.name, asked);
  }
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      useFactory: () => sqliteOptions,
      dataSourceFactory: async (options?: DataSourceOptions) =>
        addTransactionalDataSource(new DataSource(options!)),
    }),
    TypeOrmModule.forFeature([BenchItem]),
  ],
  controllers: [TransactionalSqliteController],
  providers: [TransactionalSqliteService],
})
class TransactionalSqliteModule {}

const variant: Variant = {
  prepare: () => {
    initializeTransactionalContext({ storageDriver: StorageDriver.AUTO });
  },
  module: () => TransactionalSqliteModule,
};
export default variant;
