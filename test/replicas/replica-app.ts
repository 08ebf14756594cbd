import type { DynamicModule, INestApplication, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import pg from 'pg';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { waitForReplay } from '../support/standby.js';
import { ReplicaController, ReplicaService } from './replica.controller.js';
import { ReplicaItem } from './replica-item.js';

/** The primary and the standby the global setup started (never skipped: it fails without them). */
export function pair(): { primary: string; replica: string } {
  const primary = process.env.DATABASE_REPLICA_PRIMARY_URL;
  const replica = process.env.DATABASE_REPLICA_URL;
  if (!primary || !replica) throw new Error('the global setup did not start the replica pair');
  return { primary, replica };
}

/** The port of a server URL. */
export const portOf = (url: string) => Number(new URL(url).port);

/** A running app on a replicated data source, with probes on both servers. */
export interface ReplicaApp {
  app: INestApplication;
  dataSource: DataSource;
  http: () => ReturnType<typeof request>;
  /** Waits until the standby replayed everything the primary committed so far. */
  replayed(): Promise<void>;
  /** Resolves once no connection is checked out of either pool and none is idle in transaction on either server. */
  expectClean(): Promise<void>;
  close(): Promise<void>;
}

/** Builds an app whose data source has `replication: { master: primary, slaves }`. */
export async function createReplicaApp(
  options: {
    slaves?: string[];
    context?: TypeOrmContextModuleOptions;
    logger?: LoggerService;
    /** Connections per pool (the primary's and each replica's). Default: 10. */
    poolSize?: number;
    /** The primary's URL. Default: the pair's. */
    primary?: string;
    /** More modules, controllers and providers for the app. */
    imports?: Array<DynamicModule | (new (...args: any[]) => unknown)>;
    controllers?: Array<new (...args: any[]) => unknown>;
    providers?: Array<new (...args: any[]) => unknown>;
  } = {},
): Promise<ReplicaApp> {
  const { replica } = pair();
  const primary = options.primary ?? pair().primary;
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        replication: {
          master: { url: primary },
          slaves: (options.slaves ?? [replica]).map((url) => ({ url })),
        },
        entities: [ReplicaItem],
        synchronize: true,
        poolSize: options.poolSize ?? 10,
        logging: false,
      }),
      TypeOrmContextModule.forRoot(options.context ?? {}),
      ...(options.imports ?? []),
    ],
    controllers: [ReplicaController, ...(options.controllers ?? [])],
    providers: [ReplicaService, ...(options.providers ?? [])],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: options.logger ?? false });
  await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM replica_item');
  const replayed = async () => {
    const rows: Array<{ lsn: string }> = await dataSource.query(
      'SELECT pg_current_wal_lsn()::text AS lsn',
    );
    await waitForReplay(replica, rows[0]!.lsn);
  };
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

interface CountedPool {
  totalCount: number;
  idleCount: number;
}

/** Connections checked out of the primary's pool and every replica's pool. */
export function checkedOutBoth(dataSource: DataSource): number {
  const driver = dataSource.driver as unknown as { master: CountedPool; slaves: CountedPool[] };
  return [driver.master, ...driver.slaves].reduce((n, p) => n + p.totalCount - p.idleCount, 0);
}

/** Sessions idle in transaction on the primary and on the standby. */
export async function idleBoth(): Promise<number> {
  const { primary, replica } = pair();
  let total = 0;
  for (const url of [primary, replica]) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    );
    total += rows[0].n as number;
    await client.end();
  }
  return total;
}

/**
 * Rows of `ReplicaItem` with `text`, counted on the primary (TypeORM sends reads made outside a
 * transaction to a replica, which may not have replayed the latest commit yet).
 */
export async function countOnPrimary(dataSource: DataSource, text: string): Promise<number> {
  const runner = dataSource.createQueryRunner('master');
  try {
    return await runner.manager.countBy(ReplicaItem, { text });
  } finally {
    await runner.release();
  }
}

/** Runs `sql` on the server at `url` (e.g. `pg_wal_replay_pause()` on a standby). */
export async function runOn(url: string, sql: string): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Pauses the standby's replay (it keeps receiving WAL) until `resumeReplay()`. */
export async function pauseReplay(url = pair().replica): Promise<void> {
  await runOn(url, 'SELECT pg_wal_replay_pause()');
}

/** Resumes the standby's replay. */
export async function resumeReplay(url = pair().replica): Promise<void> {
  await runOn(url, 'SELECT pg_wal_replay_resume()');
}

/** A logger that keeps the lines it is given (`'warn <message>'`), for the log assertions. */
export function captureLogs(): LoggerService & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: unknown) =>
    void lines.push(`${level} ${String(message)}`);
  return { lines, log: keep('log'), warn: keep('warn'), error: keep('error') };
}
