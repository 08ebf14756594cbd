import { Controller, Post } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { backendId, checkedOut, engines, type Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

let current: Engine;

/** Ends the backend behind `manager` from another connection, as an outage or a failover does. */
async function killBackendOf(manager: EntityManager, dataSource: DataSource): Promise<void> {
  const id = await backendId(current, manager);
  await dataSource.query(
    current.name === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL CONNECTION ${id}`,
  );
}

@Controller('outage')
class OutageController {
  constructor(private readonly context: SessionContext) {}

  @Post('killed')
  async killed() {
    const session = this.context.session();
    await session.insert(Example, { text: 'before' });
    await killBackendOf(session, session.connection);
    await session.insert(Example, { text: 'after' });
    return 'ok';
  }
}

describe.each(engines)('a connection lost under a session ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    current = engine;
    t = await createTestApp(engine, { controllers: [OutageController] });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('fails the statement with ConnectionLostError naming the data source, refuses the rest, and commits nothing', async () => {
    const errors: Error[] = [];
    const ended = await factory
      .runInNewContext(async () => {
        const session = context.session();
        await session.insert(Example, { text: 'before' });
        await killBackendOf(session, t.dataSource);
        // The first statement after the kill meets the dead connection; the next ones, the mark.
        for (const text of ['after 1', 'after 2']) {
          await session.insert(Example, { text }).catch((error: Error) => errors.push(error));
        }
        await session.query('SELECT 1').catch((error: Error) => errors.push(error));
      })
      .catch((error: Error) => error);
    // Any other error is shown whole (code and message), so a failure says what the driver saw.
    const seen = (error: Error & { driverError?: { code?: unknown } }) =>
      error.name === 'ConnectionLostError'
        ? error.name
        : `${error.name} ${String(error.driverError?.code)}: ${error.message}`;
    expect(errors.map(seen)).toEqual([
      'ConnectionLostError',
      'ConnectionLostError',
      'ConnectionLostError',
    ]);
    expect(errors[0]!.message).toMatch(/data source 'default' was lost/);
    expect((errors[0] as Error & { cause?: unknown }).cause).toBeDefined();
    // Not a new transaction on another connection: the unit ends in the same error.
    expect(ended).toMatchObject({ name: 'ConnectionLostError' });
    expect(await t.rows()).toBe(0);
  });

  it('over HTTP: an error response, nothing written, and the next request works', async () => {
    await t.http().post('/outage/killed').expect(500);
    expect(await t.rows()).toBe(0);
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'next' }));
    expect(await t.texts()).toEqual(['next']);
  });

  it('rollback() ends the lost transaction; the session then begins a new one on a new connection', async () => {
    await factory.runInNewContext(async () => {
      const session = context.session();
      await session.insert(Example, { text: 'lost' });
      const before = await backendId(engine, session);
      await killBackendOf(session, t.dataSource);
      await session.query('SELECT 1').catch(() => undefined);
      await context.rollback();
      await session.insert(Example, { text: 'kept' });
      expect(await backendId(engine, session)).not.toBe(before);
    });
    expect(await t.texts()).toEqual(['kept']);
  });
});

describe.each(engines.filter((engine) => engine.name === 'postgres'))(
  'a connection that breaks the instant the pool hands it out ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;
    /** Connections the pool handed out that got an error in that same tick. */
    let broken = 0;

    beforeAll(async () => {
      t = await createTestApp(engine, { poolSize: 2 });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
      // What an outage does when the server's goodbye arrives in the read that completed the
      // connection: the pool's callback runs, then the client reports the error at once, before
      // any promise continuation could attach a listener. Without a listener Node kills the process.
      const pool = (t.dataSource.driver as unknown as { master: PgPool }).master;
      const connect = pool.connect.bind(pool);
      pool.connect = (callback) =>
        connect((error, client, release) => {
          callback(error, client, release);
          if (!error && broken < 2) {
            broken++;
            client.emit('error', new Error('Connection terminated unexpectedly'));
          }
        });
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('keeps the process alive, drops the broken connections and serves the session from a healthy one', async () => {
      await factory.runInNewContext(() => context.session().insert(Example, { text: 'served' }));
      expect(broken).toBe(2);
      expect(await t.texts()).toEqual(['served']);
      await eventually(() => checkedOut(t.dataSource) === 0);
    });
  },
);

describe.each(engines.filter((engine) => engine.name === 'postgres'))(
  'guardPool: plain TypeORM code on a connection that breaks as it is handed out ($name)',
  (engine) => {
    let t: TestApp;
    let broken = 0;

    beforeAll(async () => {
      t = await createTestApp(engine, { context: { guardPool: true } });
      const pool = (t.dataSource.driver as unknown as { master: PgPool }).master;
      const connect = pool.connect.bind(pool);
      pool.connect = (callback) =>
        connect((error, client, release) => {
          callback(error, client, release);
          if (!error && broken < 1) {
            broken++;
            client.emit('error', new Error('Connection terminated unexpectedly'));
          }
        });
    });
    afterAll(() => t.close());

    it("keeps the process alive while TypeORM's own runner attaches its listener", async () => {
      // dataSource.query() takes a connection through TypeORM's runner, not a session.
      const rows: Array<{ one: number }> = await t.dataSource.query('SELECT 1 AS one');
      expect(broken).toBe(1);
      expect(rows).toEqual([{ one: 1 }]);
      await eventually(() => checkedOut(t.dataSource) === 0);
    });
  },
);

interface PgClient {
  emit(event: 'error', error: Error): boolean;
}
interface PgPool {
  connect(
    callback: (error: Error | undefined, client: PgClient, release: () => void) => void,
  ): void;
}
