/**
 * One mode of the testing-kit benchmark, in a process of its own:
 * `node kit-run.js <kit|truncate|typeorm-transactional-tests> <tests>`. Boots the shop app, then
 * runs `<tests>` tests the way a test suite would: set up, one order placed over HTTP (ten
 * rows), its lines read back over HTTP and counted through the DataSource, tear down. Prints the
 * wall time per test as JSON.
 */
import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { TRUNCATE } from './shop.js';

type Mode =
  'none' | 'kit' | 'truncate' | 'typeorm-transactional (none)' | 'typeorm-transactional-tests';

/** What a mode does around each test. */
interface Harness {
  before(): Promise<void>;
  after(): Promise<void>;
}

/** No isolation at all: the cost of the test's own work, the floor each harness adds to. */
const nothing: Harness = { before: async () => undefined, after: async () => undefined };

async function boot(mode: Mode): Promise<{ app: INestApplication; harness: Harness }> {
  if (mode.startsWith('typeorm-transactional')) {
    const { initializeTransactionalContext, StorageDriver } = await import('typeorm-transactional');
    initializeTransactionalContext({ storageDriver: StorageDriver.AUTO });
    const { TransactionalShopModule } = await import('./app-transactional.js');
    const app = await NestFactory.create(TransactionalShopModule, { logger: false });
    const { TransactionalTestContext } =
      (await import('typeorm-transactional-tests')) as unknown as {
        TransactionalTestContext: new (dataSource: DataSource) => {
          start(): Promise<void>;
          finish(): Promise<void>;
        };
      };
    let context: { start(): Promise<void>; finish(): Promise<void> } | undefined;
    if (mode === 'typeorm-transactional (none)') return { app, harness: nothing };
    return {
      app,
      harness: {
        before: async () => {
          context = new TransactionalTestContext(app.get(DataSource));
          await context.start();
        },
        after: () => context!.finish(),
      },
    };
  }
  const { ContextShopModule } = await import('./app-context.js');
  const app = await NestFactory.create(ContextShopModule, { logger: false });
  if (mode === 'none') return { app, harness: nothing };
  if (mode === 'truncate') {
    return {
      app,
      harness: { before: () => app.get(DataSource).query(TRUNCATE), after: async () => undefined },
    };
  }
  const { TestTransaction } = await import('../../../dist/testing/index.js');
  let tx: { rollback(): Promise<void> } | undefined;
  return {
    app,
    harness: {
      before: async () => {
        tx = await TestTransaction.start(app);
      },
      after: () => tx!.rollback(),
    },
  };
}

async function main(): Promise<void> {
  const [mode, count] = process.argv.slice(2) as [Mode, string];
  const { app, harness } = await boot(mode);
  await app.listen(0, '127.0.0.1');
  const base = await app.getUrl();
  const dataSource = app.get(DataSource);
  await dataSource.query(TRUNCATE);
  const test = async () => {
    await harness.before();
    try {
      const placed = await fetch(`${base}/orders`, { method: 'POST' });
      if (placed.status !== 201) throw new Error(`POST /orders answered ${placed.status}`);
      const { id } = (await placed.json()) as { id: number };
      const { lines } = (await (await fetch(`${base}/orders/${id}/lines`)).json()) as {
        lines: number;
      };
      const [{ n }] = (await dataSource.query(
        'SELECT count(*)::int AS n FROM kit_order_line WHERE "orderId" = $1',
        [id],
      )) as Array<{ n: number }>;
      const counted = Number(n);
      if (lines !== 5 || counted !== 5)
        throw new Error(`expected 5 lines, saw ${lines} / ${counted}`);
    } finally {
      await harness.after();
    }
  };
  for (let i = 0; i < 10; i++) await test(); // warm-up: JIT, pool, lazy init
  const started = performance.now();
  for (let i = 0; i < Number(count); i++) await test();
  const ms = performance.now() - started;
  await app.close();
  process.stdout.write(
    JSON.stringify({ mode, tests: Number(count), ms, perTest: ms / Number(count) }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
