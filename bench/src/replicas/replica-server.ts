/**
 * The app of the replicas bench, in a process of its own: `node replica-server.js <mode> <port>`
 * with BENCH_PRIMARY_URL and (mode `replica`) BENCH_REPLICA_URL. GET /read is a read-only
 * `sessionFactory.atomic()`, POST /write an INSERT in the request's unit of work; each answers the
 * port of the server it ran on, counted for GET /placement.
 */
import 'reflect-metadata';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Controller, Get, Inject, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Column, Entity, type EntityManager, PrimaryGeneratedColumn } from 'typeorm';

type Library = typeof import('../../../dist/index.js');
const here = path.dirname(fileURLToPath(import.meta.url));
const { SessionContext, SessionFactory, TypeOrmContextModule } = (await import(
  pathToFileURL(path.resolve(here, '../../../../dist/index.js')).href
)) as Library;

/** The bench's table, seeded by replica-bench.ts. */
@Entity('replica_bench_item')
export class Item {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar' })
  name!: string;
}

/** Statements by the port of the server they ran on. */
const placement: Record<string, number> = {};
const count = (port: number) => (placement[port] = (placement[port] ?? 0) + 1);
let next = 0;

async function readOne(manager: EntityManager): Promise<number> {
  next = (next % 1000) + 1;
  const rows: Array<{ port: number }> = await manager.query(
    'SELECT id, name, inet_server_port() AS port FROM replica_bench_item WHERE id = $1',
    [next],
  );
  return rows[0]!.port;
}

@Controller()
class BenchController {
  constructor(
    @Inject(SessionContext) private readonly context: InstanceType<Library['SessionContext']>,
    @Inject(SessionFactory) private readonly factory: InstanceType<Library['SessionFactory']>,
  ) {}

  @Get('read')
  async read(): Promise<number> {
    return count(await this.factory.atomic(readOne, { readOnly: true }));
  }

  @Post('write')
  async write(): Promise<number> {
    const session = this.context.session();
    await session.insert(Item, { name: `w${process.pid}` });
    const rows: Array<{ port: number }> = await session.query('SELECT inet_server_port() AS port');
    return count(rows[0]!.port);
  }

  @Get('placement')
  placement(): Record<string, number> {
    return placement;
  }
}

const [mode, port] = process.argv.slice(2);
const primary = process.env.BENCH_PRIMARY_URL!;
const replica = process.env.BENCH_REPLICA_URL;
const connection =
  mode === 'replica'
    ? { replication: { master: { url: primary }, slaves: [{ url: replica! }] } }
    : { url: primary };

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      ...connection,
      entities: [Item],
      poolSize: Number(process.env.BENCH_POOL ?? 10),
      logging: false,
    }),
    TypeOrmContextModule.forRoot(),
  ],
  controllers: [BenchController],
})
class AppModule {}

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
await app.listen(Number(port), '127.0.0.1');
process.send?.('ready');
