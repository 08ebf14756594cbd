/**
 * The app of the PgBouncer bench, in a process of its own: `node mix-server.js <port>` with
 * BENCH_DATABASE_URL naming the server or PgBouncer. GET /mix answers nine readOnly reads in
 * ten requests and one write (an INSERT), counted per process. A read is a readOnly transaction
 * of its own (`sessionFactory.atomic`); the request's session, never used then, takes nothing.
 */
import 'reflect-metadata';
import { Controller, Get, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BenchItem, rowName, someId, typeormOptions } from '../shared.js';

// The snapshot of the root build in bench/.tmp/dist (this file runs from bench/.tmp/js-scaling/).
type Library = typeof import('../../../dist/index.js');
const here = path.dirname(fileURLToPath(import.meta.url));
const { SessionContext, SessionFactory, TypeOrmContextModule } = (await import(
  pathToFileURL(path.resolve(here, '../../../../dist/index.js')).href
)) as Library;
type SessionContext = InstanceType<Library['SessionContext']>;
type SessionFactory = InstanceType<Library['SessionFactory']>;

let requests = 0;

@Controller()
class MixController {
  constructor(
    @Inject(SessionContext) private readonly context: SessionContext,
    @Inject(SessionFactory) private readonly factory: SessionFactory,
  ) {}

  @Get('mix')
  async mix(): Promise<number> {
    requests += 1;
    if (requests % 10 === 0) {
      const result = await this.context.session().insert(BenchItem, { name: rowName('mix') });
      return Number(result.identifiers[0].id);
    }
    const row = await this.factory.atomic(
      (manager) => manager.findOneBy(BenchItem, { id: someId() }),
      {
        readOnly: true,
      },
    );
    return row!.id;
  }
}

@Module({
  imports: [TypeOrmModule.forRoot(typeormOptions), TypeOrmContextModule.forRoot()],
  controllers: [MixController],
})
class MixModule {}

const app = await NestFactory.create(MixModule, { logger: ['error', 'warn'] });
await app.listen(Number(process.argv[2]), '127.0.0.1');
process.send!({ type: 'ready' });
process.on('message', () => void app.close().finally(() => process.exit(0)));
