import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  ConnectionAcquireTimeoutError,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { type TestApp, createTestApp, wrap } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 400;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `text` in a unit of its own in `t`, holding its turn `ms` before the commit. */
function write(t: TestApp, text: string, ms = 0): Promise<void> {
  return t.app.get(SessionFactory).runInNewContext(async () => {
    await t.app.get(SessionContext).session().insert(Example, { text });
    if (ms > 0) await sleep(ms);
  });
}

/** Attack: data sources destroyed, re-initialized, two apps in one process, closing mid-turn. */
describe.each(sqliteEngines)('SQLite review: data source lifecycle ($name)', (engine) => {
  it('destroy() then initialize() of the same data source: sessions and plain code work again', async () => {
    const t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    try {
      await write(t, 'before');
      await t.dataSource.destroy();
      await t.dataSource.initialize(); // a fresh in-memory database (synchronize: true)
      await write(t, 'after');
      await t.dataSource.query("INSERT INTO example (text) VALUES ('plain')");
      expect(await t.texts()).toEqual(['after', 'plain']);
      await t.expectClean();
    } finally {
      await t.close();
    }
  });

  it('destroy() while a unit holds the turn and another waits: both settle, the re-initialized source works', async () => {
    const t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    try {
      const holder = write(t, 'holder', 100).catch((error: Error) => error);
      await sleep(20);
      const waiter = write(t, 'waiter').catch((error: Error) => error);
      await sleep(20);
      await t.dataSource.destroy();
      await Promise.all([holder, waiter]);
      await t.dataSource.initialize();
      await write(t, 'after');
      expect(await t.texts()).toEqual(['after']);
      await t.expectClean();
    } finally {
      await t.close();
    }
  });

  it('two apps in one process, each on its own in-memory database, never wait for each other', async () => {
    const one = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    const two = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    try {
      // One holds its turn for longer than two's acquireTimeout.
      const slow = write(one, 'one', ACQUIRE + 200);
      await sleep(20);
      await write(two, 'two');
      await slow;
      expect(await one.texts()).toEqual(['one']);
      expect(await two.texts()).toEqual(['two']);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('app.close() then a new app in the same process: the new one works, the test kit too', async () => {
    const first = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    await write(first, 'first');
    const tx = await TestTransaction.start(first.app);
    await write(first, 'in test');
    await tx.rollback();
    await first.close();
    const second = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    try {
      const tx2 = await TestTransaction.start(second.app);
      await write(second, 'in second test');
      expect(await second.texts()).toEqual(['in second test']);
      await tx2.rollback();
      expect(await second.texts()).toEqual([]);
      await second.expectClean();
    } finally {
      await second.close();
    }
  });

  it('the testing kit, app built once: many tests in a row each see only their own rows', async () => {
    const t = await createTestApp(engine, { context: { acquireTimeout: ACQUIRE } });
    try {
      for (const n of [1, 2, 3]) {
        const tx = await TestTransaction.start(t.app);
        await write(t, `test ${n}`);
        await t.dataSource.getRepository(Example).save({ text: `plain ${n}` });
        expect(await t.texts()).toEqual([`plain ${n}`, `test ${n}`]);
        await tx.rollback();
      }
      expect(await t.rows()).toBe(0);
      await t.expectClean();
    } finally {
      await t.close();
    }
  });

  it("one DataSource shared by two apps in turn: plain code of the second app waits the second app's acquireTimeout", async () => {
    const shared = new DataSource({
      ...engine.options,
      entities: [Example],
      synchronize: true,
    } as never);
    const build = async (acquireTimeout: number) => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRootAsync({
            useFactory: () => ({ ...engine.options }),
            dataSourceFactory: async () => (shared.isInitialized ? shared : shared.initialize()),
          }),
          TypeOrmContextModule.forRoot({ acquireTimeout }),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      return wrap(app, engine, app.get(DataSource));
    };
    const first = await build(5000);
    await first.close();
    const second = await build(200);
    try {
      // A unit of the second app holds the turn; plain code outside it waits for it.
      const holder = write(second, 'holder', 800);
      await sleep(20);
      const plain = await second.dataSource.query('SELECT 1').then(
        () => undefined,
        (error: Error) => error,
      );
      await holder;
      expect(plain).toBeInstanceOf(ConnectionAcquireTimeoutError);
      // The writer's guard was made by the first (closed) app: its 5000 ms, not the second's 200.
      expect(plain?.message).toContain('(200 ms)');
    } finally {
      await second.close();
    }
  });
});
