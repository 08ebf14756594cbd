import { Controller, Get, Injectable, Module, Post, Query } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ClsPluginTransactional, TransactionHost, Transactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { ClsModule } from 'nestjs-cls';
import { DataSource } from 'typeorm';
import type { Variant } from '../../shared.js';
import { BenchItem, mixedAsk, named, readRow, sqliteOptions, writeRow } from '../sqlite-shared.js';

/** The service: `@Transactional()` on each method, the repository of `txHost.tx`. */
@Injectable()
export class ClsSqliteService {
  constructor(private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>) {}

  private get repo() {
    return this.txHost.tx.getRepository(BenchItem);
  }

  @Transactional()
  read() {
    return readRow(this.repo);
  }

  @Transactional()
  write(name: string, options?: { fail: boolean; io: boolean }) {
    return writeRow(this.repo, name, options);
  }
}

/** @nestjs-cls/transactional with its TypeORM adapter, CLS middleware mounted. */
@Controller()
export class ClsSqliteController {
  constructor(private readonly items: ClsSqliteService) {}

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
    TypeOrmModule.forRoot(sqliteOptions),
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
  controllers: [ClsSqliteController],
  providers: [ClsSqliteService],
})
class ClsSqliteModule {}

const variant: Variant = { module: () => ClsSqliteModule };
export default variant;
