import type { INestApplication, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import request from 'supertest';
import { DataSource, type Logger as TypeormLogger } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { waitForReplay } from '../support/standby.js';
import { checkedOutBoth, idleBoth, pair, resumeReplay, runOn } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';

/** review22's app: a replicated data source with room for subscribers, a TypeORM logger, Fastify. */
export interface R22App {
  app: INestApplication;
  dataSource: DataSource;
  http: () => ReturnType<typeof request>;
  /** Waits until the standby replayed everything the primary wrote so far. */
  replayed(url?: string): Promise<void>;
  expectClean(): Promise<void>;
  close(): Promise<void>;
}

export async function createR22App(
  options: {
    slaves?: string[] | false;
    context?: TypeOrmContextModuleOptions;
    logger?: LoggerService;
    typeormLogger?: TypeormLogger;
    subscribers?: Array<new (...args: any[]) => unknown>;
    controllers?: Array<new (...args: any[]) => unknown>;
    providers?: Array<new (...args: any[]) => unknown>;
    fastify?: boolean;
    poolSize?: number;
  } = {},
): Promise<R22App> {
  const { primary, replica } = pair();
  const slaves = options.slaves === false ? [] : (options.slaves ?? [replica]);
  const connection =
    slaves.length === 0
      ? { url: primary }
      : { replication: { master: { url: primary }, slaves: slaves.map((url) => ({ url })) } };
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        ...connection,
        entities: [ReplicaItem],
        subscribers: options.subscribers ?? [],
        synchronize: true,
        poolSize: options.poolSize ?? 10,
        logging: options.typeormLogger ? 'all' : false,
        logger: options.typeormLogger,
      }),
      TypeOrmContextModule.forRoot(options.context ?? {}),
      TypeOrmModule.forFeature([ReplicaItem]),
    ],
    controllers: options.controllers ?? [],
    providers: options.providers ?? [],
  }).compile();
  const app = options.fastify
    ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: options.logger ?? false })
    : moduleRef.createNestApplication({
        logger: options.logger ?? (process.env.R22_DEBUG ? ['error', 'warn', 'log'] : false),
      });
  await app.init();
  if (options.fastify) {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<void> }).ready();
  }
  const dataSource = app.get(DataSource);
  await runOn(primary, 'DELETE FROM replica_item');
  const replayed = async (url = replica) => {
    const rows = await runOn(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
    await waitForReplay(url, rows[0]!.lsn as string);
  };
  await replayed();
  return {
    app,
    dataSource,
    http: () => request(app.getHttpServer()),
    replayed,
    expectClean: () =>
      eventually(async () => checkedOutBoth(dataSource) === 0 && (await idleBoth()) === 0),
    close: async () => {
      await resumeReplay().catch(() => undefined);
      await app.close();
    },
  };
}

/** The position in a token (`default=0/3000060`), as a number. */
export function positionIn(token: string, dataSource = 'default'): bigint {
  for (const entry of token.split('&')) {
    const at = entry.lastIndexOf('=');
    if (decodeURIComponent(entry.slice(0, at)) === dataSource) {
      const [high, low] = entry.slice(at + 1).split('/');
      return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
    }
  }
  throw new Error(`no ${dataSource} in ${token}`);
}

/** Rows with `text` on the server at `url`, and whether it is a standby. */
export async function rowsOn(url: string, text: string): Promise<number> {
  const rows = await runOn(
    url,
    `SELECT count(*)::int AS n FROM replica_item WHERE text = '${text.replace(/'/g, "''")}'`,
  );
  return rows[0]!.n as number;
}
