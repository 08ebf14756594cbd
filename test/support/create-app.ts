import type { DynamicModule, INestApplication, Provider, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { type Engine, checkedOut, idleInTransaction } from './engines.js';
import { Example } from './example.entity.js';

/** What a scenario's app module is made of. */
export interface AppParts {
  controllers?: Type[];
  providers?: Provider[];
  imports?: Array<Type | DynamicModule>;
  context?: TypeOrmContextModuleOptions;
  poolSize?: number;
}

/** A running Nest app on a real database, with the probes the assertions need. */
export interface TestApp {
  app: INestApplication;
  dataSource: DataSource;
  http: () => ReturnType<typeof request>;
  /** Rows in `example`, counted on a fresh connection. */
  rows(): Promise<number>;
  /** Texts in `example`, sorted. */
  texts(): Promise<string[]>;
  /** Resolves once no connection is checked out and none is idle in transaction. */
  expectClean(): Promise<void>;
  close(): Promise<void>;
}

/** Polls `probe` until it returns true (or fails after `ms`). */
export async function eventually(
  probe: () => Promise<boolean> | boolean,
  ms = 3000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${ms} ms: ${probe.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** TypeORM options for `engine` with the suite's entity. */
export function typeormOptions(engine: Engine, poolSize = 10, name?: string) {
  return {
    ...engine.options,
    name,
    entities: [Example],
    synchronize: true,
    poolSize,
    logging: Boolean(process.env.LOG_SQL),
  };
}

/** Builds and starts an app: TypeOrmModule + TypeOrmContextModule + the scenario's parts. */
export async function createTestApp(engine: Engine, parts: AppParts = {}): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine, parts.poolSize)),
      TypeOrmContextModule.forRoot(parts.context ?? {}),
      ...(parts.imports ?? []),
    ],
    controllers: parts.controllers ?? [],
    providers: parts.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({
    logger: process.env.TEST_LOG ? ['error', 'warn'] : false,
  });
  await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return wrap(app, engine, dataSource);
}

/** Adds the probes to a started app. */
export function wrap(app: INestApplication, engine: Engine, dataSource: DataSource): TestApp {
  return {
    app,
    dataSource,
    http: () => request(app.getHttpServer()),
    rows: async () => {
      const result: Array<{ n: number | string }> = await dataSource.query(
        'SELECT count(*) AS n FROM example',
      );
      return Number(result[0]?.n);
    },
    texts: async () => {
      const result: Array<{ text: string }> = await dataSource.query('SELECT text FROM example');
      return result.map((row) => row.text).sort();
    },
    expectClean: () =>
      eventually(
        async () =>
          checkedOut(dataSource) === 0 && (await idleInTransaction(engine, dataSource)) === 0,
      ),
    close: () => app.close(),
  };
}
