/**
 * The app of the replicas bench, in a process of its own: `node replica-server.js <mode> <port>`
 * with BENCH_PRIMARY_URL and (modes `replica`, `tokens`) BENCH_REPLICA_URL; mode `tokens` sends
 * and reads consistency tokens in the `x-consistency-token` header. GET /read?id= is a read-only
 * `sessionFactory.atomic()` reading one row by id, POST /write an INSERT in the request's unit of
 * work; each answers the port of the server it ran on (counted for GET /placement), a read whether
 * it found the row, a write the id it inserted.
 */
import 'reflect-metadata';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Controller, Get, Inject, Module, Post, Query } from '@nestjs/common';
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

async function readOne(
  manager: EntityManager,
  id: number,
): Promise<{ port: number; found: boolean }> {
  const rows: Array<{ port: number; id: number | null }> = await manager.query(
    'SELECT inet_server_port() AS port, (SELECT id FROM replica_bench_item WHERE id = $1) AS id',
    [id],
  );
  return { port: count(rows[0]!.port), found: rows[0]!.id !== null };
}

@Controller()
class BenchController {
  constructor(
    @Inject(SessionContext) private readonly context: InstanceType<Library['SessionContext']>,
    @Inject(SessionFactory) private readonly factory: InstanceType<Library['SessionFactory']>,
  ) {}

  /** Reads row `id` (a seeded one in turn when none is given). */
  @Get('read')
  read(@Query('id') id?: string): Promise<{ port: number; found: boolean }> {
    next = (next % 1000) + 1;
    const wanted = id ? Number(id) : next;
    return this.factory.atomic((manager) => readOne(manager, wanted), { readOnly: true });
  }

  @Post('write')
  async write(): Promise<{ port: number; id: number }> {
    const session = this.context.session();
    const rows: Array<{ port: number; id: number }> = await session.query(
      'INSERT INTO replica_bench_item (name) VALUES ($1) RETURNING id, inet_server_port() AS port',
      [`w${process.pid}`],
    );
    return { port: count(rows[0]!.port), id: rows[0]!.id };
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
  mode === 'primary'
    ? { url: primary }
    : { replication: { master: { url: primary }, slaves: [{ url: replica! }] } };

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      ...connection,
      entities: [Item],
      poolSize: Number(process.env.BENCH_POOL ?? 10),
      logging: false,
    }),
    TypeOrmContextModule.forRoot(
      mode === 'tokens' ? { consistency: { header: 'x-consistency-token' } } : {},
    ),
  ],
  controllers: [BenchController],
})
class AppModule {}

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
await app.listen(Number(port), '127.0.0.1');
process.send?.('ready');
