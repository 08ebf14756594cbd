import { randomUUID } from 'node:crypto';
import type { DynamicModule, LoggerService, Provider, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Redis } from 'ioredis';
import { DataSource, type EntityManager } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** The suite's Redis: the machine's server (`.ci/run` starts it). */
export const redis = { host: '127.0.0.1', port: 6379 };

/** A Redis key prefix of this spec's own ("jobs-..."), for BullMQ's `prefix` option. */
export const newPrefix = () => `jobs-${randomUUID().slice(0, 8)}`;

/** Deletes every Redis key under `prefix`. */
export async function dropPrefix(prefix: string): Promise<void> {
  const client = new Redis(redis);
  try {
    const keys = await client.keys(`${prefix}:*`);
    if (keys.length > 0) await client.del(...keys);
  } finally {
    client.disconnect();
  }
}

/** What a jobs app is made of; `first` goes before TypeOrmModule / TypeOrmContextModule. */
export interface JobsAppParts {
  first?: Array<Type | DynamicModule>;
  imports?: Array<Type | DynamicModule>;
  providers?: Provider[];
  context?: TypeOrmContextModuleOptions;
  poolSize?: number;
  logger?: LoggerService;
}

/**
 * Builds and starts an app on `engine`, its table emptied before it starts: its schedules
 * (`@Timeout(10)`, `@Interval(50)`) may write as soon as `app.init()` resolves, so a DELETE after
 * it could remove their first rows on a loaded machine.
 */
export async function startJobsApp(engine: Engine, parts: JobsAppParts): Promise<TestApp> {
  const cleaner = new DataSource(typeormOptions(engine, 1));
  await cleaner.initialize(); // synchronize: the table exists from here on
  try {
    await cleaner.query('DELETE FROM example');
  } finally {
    await cleaner.destroy();
  }
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...(parts.first ?? []),
      TypeOrmModule.forRoot(typeormOptions(engine, parts.poolSize)),
      TypeOrmContextModule.forRoot(parts.context ?? {}),
      TypeOrmContextModule.forFeature([Example]),
      ...(parts.imports ?? []),
    ],
    providers: parts.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({
    logger: parts.logger ?? (process.env.TEST_LOG ? ['error', 'warn'] : false),
  });
  try {
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return wrap(app, engine, app.get(DataSource));
}

/** Both orders of the imports: the job package's module before the context module, and after. */
export const importOrders = [
  ['the job module imported first', true],
  ['the job module imported last', false],
] as const;

/** The imports of an app with `modules` placed before or after the context module. */
export function ordered(first: boolean, modules: Array<Type | DynamicModule>) {
  return first ? { first: modules } : { imports: modules };
}

/** What one run of a job saw: the transaction it wrote in. */
export interface Run {
  name: string;
  txid: string | null;
}

/** The transaction `manager` is in right now (null when none). */
export const currentTx = (engine: Engine, manager: EntityManager) => txid(engine, manager);

/**
 * The transaction that wrote each row of `example`, by text: PostgreSQL's `xmin` (MariaDB keeps
 * no such column: undefined there).
 */
export async function writers(
  engine: Engine,
  dataSource: DataSource,
): Promise<Map<string, string> | undefined> {
  if (engine.name !== 'postgres') return undefined;
  const rows: Array<{ text: string; xmin: string }> = await dataSource.query(
    'SELECT text, xmin::text AS xmin FROM example',
  );
  return new Map(rows.map((row) => [row.text, row.xmin]));
}

/** A promise with its resolve function, for a test to wait on a job. */
export function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

export { Example };
