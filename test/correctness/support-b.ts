import type { Readable } from 'node:stream';
import { runInThisContext } from 'node:vm';
import type { DynamicModule, Provider, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import type { Test as SuperTest, Response } from 'supertest';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { eventually, type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { checkedOut, type Engine } from '../support/engines.js';

/** How long a step may take before the test calls it hung. */
export const HANG_MS = 5000;

/**
 * Settles like `work`, or rejects with "hung: <what>" once `ms` passed. `onHang` runs first (to
 * abort a request or unblock a connection), so a hung step fails clearly instead of blocking Jest.
 */
export async function within<T>(
  ms: number,
  what: string,
  work: Promise<T>,
  onHang?: () => Promise<void> | void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = Symbol('hung');
  const timeout = new Promise<typeof hung>((resolve) => {
    timer = setTimeout(() => resolve(hung), ms);
  });
  try {
    const outcome = await Promise.race([work, timeout]);
    if (outcome === hung) {
      work.catch(() => undefined);
      await onHang?.();
      throw new Error(`hung: ${what} did not settle within ${ms} ms`);
    }
    return outcome as T;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends `request` and returns its response, or fails with "hung: ..." after `ms`: the request is
 * aborted and `unblock` runs (by default: the server connections of the test database are
 * terminated) so that nothing stays blocked behind it.
 */
export function answered(
  request: SuperTest,
  engine: Engine,
  what: string,
  options: { ms?: number; unblock?: () => Promise<void> } = {},
): Promise<Response> {
  const sent = new Promise<Response>((resolve, reject) => {
    request.then(resolve, reject);
  });
  return within(options.ms ?? HANG_MS, what, sent, async () => {
    request.abort();
    await (options.unblock ? options.unblock() : terminateServerConnections(engine));
  });
}

/**
 * Terminates every other server connection to the test database, on a connection of its own: the
 * last resort that unblocks a driver waiting on a statement that will never finish (a hung test
 * would otherwise keep its connection, and `app.close()` with it, forever).
 */
export async function terminateServerConnections(engine: Engine): Promise<void> {
  const side = new DataSource({ ...engine.options, poolSize: 1, logging: false });
  await side.initialize();
  try {
    if (engine.name === 'postgres') {
      await side.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
      );
    } else {
      const rows: Array<{ id: number | string }> = await side.query(
        'SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()',
      );
      for (const { id } of rows) await side.query(`KILL ${Number(id)}`).catch(() => undefined);
    }
  } finally {
    await side.destroy();
  }
}

/** Closes the app; if that hangs (a test left a connection blocked), unblocks it and tries again. */
export async function closeApp(t: TestApp | undefined, engine: Engine): Promise<void> {
  if (!t) return;
  const closing = t.close();
  try {
    await within(HANG_MS, 'app.close()', closing, () => terminateServerConnections(engine));
  } catch (error) {
    await within(HANG_MS, 'app.close() after terminating connections', closing).catch(
      () => undefined,
    );
    throw error;
  }
}

/** Inserts `count` rows into `example` in one statement, texts `row 1` … `row <count>`. */
export async function insertRows(dataSource: DataSource, count: number): Promise<void> {
  const values = Array.from({ length: count }, (_, i) => `('row ${i + 1}')`).join(',');
  await dataSource.query(`INSERT INTO example (text) VALUES ${values}`);
}

/** Reads a stream to its end and returns how many chunks it gave; rejects with its error. */
export async function readAll(stream: Readable): Promise<number> {
  let chunks = 0;
  for await (const _chunk of stream) chunks++;
  return chunks;
}

/** Blocks the event loop for `ms` (a CPU-bound step: no timer can fire meanwhile). */
export function busyWait(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Records the host process's uncaught exceptions and unhandled rejections while a test runs.
 * Jest gives tests a copy of `process` whose events never fire; the real one is the host's.
 */
export function watchProcess(): { readonly errors: unknown[]; stop(): void } {
  const host = runInThisContext('process') as NodeJS.Process;
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  host.on('uncaughtException', onError);
  host.on('unhandledRejection', onError);
  return {
    errors,
    stop: () => {
      host.off('uncaughtException', onError);
      host.off('unhandledRejection', onError);
    },
  };
}

/** The second data source of the multi-data-source scenarios (same database, own pool). */
export const AUDIT = 'audit';

/** An app with the data sources 'default' and 'audit' (both on the test database). */
export interface TwoDataSourceApp extends TestApp {
  audit: DataSource;
}

/** Builds and starts an app with the data sources 'default' and 'audit'. */
export async function createTwoDataSourceApp(
  engine: Engine,
  parts: {
    controllers?: Type[];
    providers?: Provider[];
    imports?: Array<Type | DynamicModule>;
    context?: TypeOrmContextModuleOptions;
  } = {},
): Promise<TwoDataSourceApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine)),
      // Same database and table: only 'default' synchronizes (two at once race on a fresh one).
      TypeOrmModule.forRoot({ ...typeormOptions(engine, 10, AUDIT), synchronize: false }),
      TypeOrmContextModule.forRoot({ dataSources: ['default', AUDIT], ...parts.context }),
      ...(parts.imports ?? []),
    ],
    controllers: parts.controllers ?? [],
    providers: parts.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({
    logger: process.env.TEST_LOG ? ['error', 'warn'] : false,
  });
  await app.init();
  const dataSource = app.get<DataSource>(getDataSourceToken());
  const audit = app.get<DataSource>(getDataSourceToken(AUDIT));
  await dataSource.query('DELETE FROM example');
  const t = wrap(app, engine, dataSource);
  const expectClean = t.expectClean;
  return {
    ...t,
    audit,
    expectClean: async () => {
      await expectClean();
      await eventually(() => checkedOut(audit) === 0);
    },
  };
}
