import { Controller, Get, Inject, Module, Post, Query } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Variant } from '../../shared.js';
import { BenchItem, mixedAsk, named, readRow, sqliteOptions, writeRow } from '../sqlite-shared.js';

// The library under test, from the root build (`npm run build`), as bench/src/variants/ntc-app.ts.
type Library = typeof import('../../../../dist/index.js');
const { SessionContext, TypeOrmContextModule } =
  (await import('../../../../dist/index.js')) as Library;
type SessionContext = InstanceType<Library['SessionContext']>;

/**
 * This library with its defaults on better-sqlite3: no decorator, each request's session is one
 * transaction committed by the auto-commit interceptor (rolled back when the handler throws),
 * taking the data source's one connection in turn.
 */
@Controller()
export class LibrarySqliteController {
  constructor(@Inject(SessionContext) private readonly sessions: SessionContext) {}

  private get repo() {
    return this.sessions.session().getRepository(BenchItem);
  }

  @Get('read')
  read() {
    return readRow(this.repo);
  }

  @Post('write')
  write(@Query('n') n?: string) {
    return writeRow(this.repo, named(n));
  }

  @Post('mixed')
  mixed(@Query('n') n?: string, @Query('fail') fail?: string) {
    const asked = mixedAsk(n, fail);
    return writeRow(this.repo, asked.name, asked);
  }
}

@Module({
  imports: [TypeOrmModule.forRoot(sqliteOptions), TypeOrmContextModule.forRoot()],
  controllers: [LibrarySqliteController],
})
class LibrarySqliteModule {}

const variant: Variant = { module: () => LibrarySqliteModule };
export default variant;
