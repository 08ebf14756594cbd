import type {
  DynamicModule,
  INestApplication,
  LoggerService,
  Provider,
  Type,
} from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { DataSource, type EntityManager } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { waitForReplay } from '../support/standby.js';
import { checkedOutBoth, idleBoth, pair, runOn } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';

export const HEADER = 'x-consistency-token';

/** An app of the second review round: Express or Fastify, replicated or not. */
export interface ReviewApp {
  app: INestApplication;
  dataSource: DataSource;
  http: () => ReturnType<typeof request>;
  /** Waits until the pair's standby replayed what the primary committed so far. */
  replayed(): Promise<void>;
  expectClean(): Promise<void>;
  close(): Promise<void>;
}

export interface ReviewOptions {
  fastify?: boolean;
  /** Without `replication` (the primary only). */
  noReplicas?: boolean;
  slaves?: string[];
  primary?: string;
  context?: TypeOrmContextModuleOptions;
  imports?: Array<Type | DynamicModule>;
  controllers?: Type[];
  providers?: Provider[];
  logger?: LoggerService | false;
  /** TypeORM's own logger (every statement TypeORM sends). */
  typeormLogger?: unknown;
  extra?: Record<string, unknown>;
}

export async function createReviewApp(options: ReviewOptions = {}): Promise<ReviewApp> {
  const { replica } = pair();
  const primary = options.primary ?? pair().primary;
  const typeorm = options.noReplicas
    ? { url: primary }
    : {
        replication: {
          master: { url: primary },
          slaves: (options.slaves ?? [replica]).map((url) => ({ url })),
        },
      };
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        ...typeorm,
        entities: [ReplicaItem],
        synchronize: true,
        poolSize: 10,
        ...(options.typeormLogger
          ? { logging: true, logger: options.typeormLogger as never }
          : { logging: false }),
        ...options.extra,
      }),
      TypeOrmContextModule.forRoot(options.context ?? {}),
      ...(options.imports ?? []),
    ],
    controllers: options.controllers ?? [],
    providers: options.providers ?? [],
  }).compile();
  const logger = options.logger ?? false;
  const app = options.fastify
    ? moduleRef.createNestApplication(new FastifyAdapter(), { logger })
    : moduleRef.createNestApplication({ logger });
  await app.init();
  if (options.fastify) await app.getHttpAdapter().getInstance().ready();
  const dataSource = app.get(DataSource);
  const replayed = async () => {
    const rows = await runOn(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
    await waitForReplay(replica, rows[0]!.lsn as string);
  };
  await runOn(primary, 'DELETE FROM replica_item');
  await replayed();
  return {
    app,
    dataSource,
    http: () => request(app.getHttpServer()),
    replayed,
    expectClean: () =>
      eventually(async () => checkedOutBoth(dataSource) === 0 && (await idleBoth()) === 0),
    close: () => app.close(),
  };
}

/** Where a statement ran and what it saw of `text`. */
export interface Seen {
  replica: boolean;
  port: number;
  seen: number;
}

export async function seen(manager: EntityManager, text: string): Promise<Seen> {
  const rows: Array<{ replica: boolean; port: number; seen: number }> = await manager.query(
    'SELECT pg_is_in_recovery() AS replica, inet_server_port() AS port, ' +
      '(SELECT count(*)::int FROM replica_item WHERE text = $1) AS seen',
    [text],
  );
  return rows[0]!;
}

/** Rows with `text` on the primary, asked on a connection of its own. */
export async function onPrimary(text: string): Promise<number> {
  const rows = await runOn(
    pair().primary,
    `SELECT count(*)::int AS n FROM replica_item WHERE text = '${text.replace(/'/g, "''")}'`,
  );
  return rows[0]!.n as number;
}

/** The primary's current WAL insert position. */
export async function primaryLsn(): Promise<string> {
  return (await runOn(pair().primary, 'SELECT pg_current_wal_insert_lsn()::text AS l'))[0]!
    .l as string;
}

/** Whether the standby's replay is paused (asked on the standby). */
export async function replayPaused(): Promise<boolean> {
  return (await runOn(pair().replica, 'SELECT pg_is_wal_replay_paused() AS p'))[0]!.p as boolean;
}
