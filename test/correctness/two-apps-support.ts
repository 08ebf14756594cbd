import type { Provider, Type, DynamicModule, INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';

/** What one app of a two-apps scenario is made of. */
export interface AppParts {
  imports?: Array<Type | DynamicModule>;
  /** Modules imported before TypeOrmModule / TypeOrmContextModule (to control hook order). */
  importsFirst?: Array<Type | DynamicModule>;
  controllers?: Type[];
  providers?: Provider[];
  context?: TypeOrmContextModuleOptions;
  /** Runs on the app before `init()` (global interceptors and the like). */
  configure?: (app: INestApplication) => void;
}

/** Builds, starts and empties an app on `engine`. */
export async function startApp(engine: Engine, parts: AppParts = {}): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...(parts.importsFirst ?? []),
      TypeOrmModule.forRoot(typeormOptions(engine)),
      TypeOrmContextModule.forRoot(parts.context ?? {}),
      ...(parts.imports ?? []),
    ],
    controllers: parts.controllers ?? [],
    providers: parts.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({
    logger: process.env.TEST_LOG ? ['error', 'warn'] : false,
  });
  parts.configure?.(app);
  try {
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined); // its data sources may be open already
    throw error;
  }
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return wrap(app, engine, dataSource);
}

/** A second PostgreSQL database on the suite's server (its own name: other specs use theirs). */
export async function secondPostgres(): Promise<Engine> {
  const server = process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL!;
  const admin = new Client({ connectionString: server });
  await admin.connect();
  try {
    const found = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'two_apps_partner'");
    if (found.rowCount === 0) await admin.query('CREATE DATABASE two_apps_partner');
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = '/two_apps_partner';
  const postgres = engines[0]!;
  return { ...postgres, options: { ...postgres.options, url: url.toString() } };
}

/** App B's database: a second PostgreSQL database, and MariaDB when MYSQL_URL is set. */
export const partners: Array<[string, () => Promise<Engine>]> = [
  ['a second PostgreSQL database', secondPostgres],
  ...engines
    .slice(1)
    .map((engine): [string, () => Promise<Engine>] => [engine.name, async () => engine]),
];
