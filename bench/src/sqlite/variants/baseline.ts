import { Controller, Get, Module, Post, Query } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import type { Variant } from '../../shared.js';
import { BenchItem, mixedAsk, named, readRow, sqliteOptions, writeRow } from '../sqlite-shared.js';

/** A promise chain that lets one task run at a time, in order of arrival. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `task` once every task queued before it has settled. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * What a careful user writes without a context library: a QueryRunner per request with its own
 * BEGIN/COMMIT (ROLLBACK on error), one request's transaction at a time behind an in-app mutex,
 * because TypeORM's SQLite drivers share one connection among all runners.
 */
@Controller()
export class BaselineSqliteController {
  private readonly mutex = new Mutex();

  constructor(private readonly dataSource: DataSource) {}

  private inTransaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      const runner = this.dataSource.createQueryRunner();
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
    });
  }

  @Get('read')
  read() {
    return this.inTransaction((manager) => readRow(manager.getRepository(BenchItem)));
  }

  @Post('write')
  write(@Query('n') n?: string) {
    return this.inTransaction((manager) => writeRow(manager.getRepository(BenchItem), named(n)));
  }

  @Post('mixed')
  mixed(@Query('n') n?: string, @Query('fail') fail?: string) {
    const asked = mixedAsk(n, fail);
    return this.inTransaction((manager) =>
      writeRow(manager.getRepository(BenchItem), asked.name, asked),
    );
  }
}

@Module({
  imports: [TypeOrmModule.forRoot(sqliteOptions)],
  controllers: [BaselineSqliteController],
})
class BaselineSqliteModule {}

const variant: Variant = { module: () => BaselineSqliteModule };
export default variant;
