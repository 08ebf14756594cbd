import type { INestApplication } from '@nestjs/common';
import { ClientProxyFactory, type ClientProxy, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { firstValueFrom } from 'rxjs';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { freePort } from '../global-setup.js';
import { eventually, typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { KitModule, KitService, seen } from './kit-app.js';

describe.each(enginesAndSqlite)('TestTransaction ($name)', (engine) => {
  let t: TestApp;
  let app: INestApplication;
  let dataSource: DataSource;
  let client: ClientProxy;
  let tx: TestTransaction | undefined;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmContextModule.forRoot(),
        KitModule,
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: process.env.TEST_LOG ? ['error'] : false });
    const port = await freePort();
    // A hybrid app: inheritAppConfig gives the microservice the global auto-commit interceptor.
    app.connectMicroservice(
      { transport: Transport.TCP, options: { host: '127.0.0.1', port } },
      { inheritAppConfig: true },
    );
    await app.startAllMicroservices();
    await app.init();
    dataSource = app.get(DataSource);
    await dataSource.query('DELETE FROM example');
    t = wrap(app, engine, dataSource);
    client = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port },
    });
    await client.connect();
  });
  beforeEach(() => {
    seen.afterCommitRows = [];
  });
  afterEach(async () => {
    if (tx) await tx.rollback().catch(() => undefined);
    tx = undefined;
    // Outside the test transaction: nothing of it remains, nothing is held or open.
    expect(await t.rows()).toBe(0);
    await t.expectClean();
  });
  afterAll(async () => {
    client.close();
    await app.close();
  });

  /** Rows the test sees through the app's DataSource (inside its transaction while it runs). */
  const texts = async () =>
    (
      (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{ text: string }>
    ).map((row) => row.text);

  it('every kind of session writes inside the test, and rollback() undoes all of it', async () => {
    tx = await TestTransaction.start(app);
    const context = app.get(SessionContext);
    const factory = app.get(SessionFactory);
    const service = app.get(KitService);
    await t.http().post('/kit/insert').expect(201); // repository, @InjectSession, REQUIRES_NEW
    expect(await firstValueFrom(client.send('insert', 'message'))).toBe('stored');
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'new context' }));
    await service.byDecorator('decorator outside a context');
    await factory.atomic((manager) => manager.insert(Example, { text: 'factory atomic' }));
    const session = factory.open();
    await session.manager.insert(Example, { text: 'factory open' });
    await session.commit();
    await session.close();
    expect(await texts()).toEqual(
      [
        'decorator outside a context',
        'factory atomic',
        'factory open',
        'injected',
        'message',
        'new context',
        'request',
        'requires-new',
      ].sort(),
    );
    await tx.rollback();
    tx = undefined;
    expect(await texts()).toEqual([]);
  });

  it("a failing request rolls back only its own savepoint; the test's earlier data stays", async () => {
    tx = await TestTransaction.start(app);
    await dataSource.getRepository(Example).insert({ text: 'seeded by the test' });
    await t.http().post('/kit/fail').expect(500);
    await t.http().post('/kit/nested').expect(201);
    expect(await texts()).toEqual(['outer', 'seeded by the test']);
  });

  it("the test body's queries through the DataSource see the test's data, in every form", async () => {
    tx = await TestTransaction.start(app);
    await t.http().post('/kit/insert').expect(201);
    expect(await dataSource.manager.count(Example)).toBe(3);
    expect(await dataSource.getRepository(Example).findOneBy({ text: 'request' })).toMatchObject({
      text: 'request',
    });
    expect(await dataSource.createQueryBuilder(Example, 'e').getCount()).toBe(3);
    // save() and dataSource.transaction() run in savepoints of the test's transaction.
    await dataSource.getRepository(Example).save({ text: 'saved by the test' });
    await dataSource.transaction((manager) =>
      manager.insert(Example, { text: 'in a transaction' }),
    );
    await dataSource
      .transaction(async (manager) => {
        await manager.insert(Example, { text: 'rolled back' });
        throw new Error('undo');
      })
      .catch(() => undefined);
    expect(await dataSource.manager.count(Example)).toBe(5);
  });

  it("a statement of the test body that fails leaves the test's transaction usable", async () => {
    tx = await TestTransaction.start(app);
    // RETURNING: PostgreSQL and MariaDB 10.5+.
    const [{ id }] = (await dataSource.query(
      "INSERT INTO example (text) VALUES ('first') RETURNING id",
    )) as Array<{ id: number }>;
    await expect(
      dataSource.query(`INSERT INTO example (id, text) VALUES (${Number(id)}, 'duplicate')`),
    ).rejects.toThrow();
    await t.http().post('/kit/insert').expect(201);
    expect(await dataSource.manager.count(Example)).toBe(4);
  });

  it('afterCommit callbacks run when the unit releases its savepoint, and see its data', async () => {
    tx = await TestTransaction.start(app);
    await t.http().post('/kit/after-commit').expect(201);
    expect(seen.afterCommitRows).toEqual([1]);
  });

  it("the seed example's five parallel sessions and concurrent requests run, one at a time", async () => {
    tx = await TestTransaction.start(app);
    await Promise.all([
      t.http().post('/kit/parallel').expect(201),
      t.http().post('/kit/insert').expect(201),
      t.http().post('/kit/insert').expect(201),
    ]);
    expect(await dataSource.manager.count(Example)).toBe(5 + 3 + 3);
  });

  it('await using rolls back at the end of the block', async () => {
    {
      await using scoped = await TestTransaction.start(app);
      await t.http().post('/kit/insert').expect(201);
      expect(await dataSource.manager.count(Example)).toBe(3);
      expect(scoped).toBeInstanceOf(TestTransaction);
    }
    expect(await t.rows()).toBe(0);
  });

  it('misuse is a clear error: a second start, a use after rollback, a request still running', async () => {
    tx = await TestTransaction.start(app);
    await expect(TestTransaction.start(app)).rejects.toMatchObject({
      name: 'TestTransactionError',
      message: expect.stringMatching(/already running/),
    });
    const wrote = seen.slowWrote;
    const slow = t
      .http()
      .get('/kit/slow')
      .then(
        (response) => response.status,
        () => 0,
      );
    await eventually(() => seen.slowWrote > wrote); // the request holds the connection
    await expect(tx.rollback()).resolves.toBeUndefined(); // waits for the request to end (300 ms)
    expect(await slow).toBe(200);
    await expect(tx.rollback()).rejects.toMatchObject({
      name: 'TestTransactionError',
      message: expect.stringMatching(/rolled back already/),
    });
    tx = undefined;
  });

  it('rollback() gives up on work that outlives settleTimeout, rolls it back and says so', async () => {
    tx = await TestTransaction.start(app, { settleTimeout: 50 });
    const wrote = seen.slowWrote;
    const slow = t
      .http()
      .get('/kit/slow')
      .then(
        (response) => response.status,
        () => 0,
      );
    // Once the request is in (under load it can take longer than any fixed wait).
    await eventually(() => seen.slowWrote > wrote);
    await expect(tx.rollback()).rejects.toMatchObject({
      name: 'TestTransactionError',
      message: expect.stringMatching(/still running/),
    });
    tx = undefined;
    expect(await slow).not.toBe(200);
  });
});
