import { Controller, Post } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import {
  checkedOut,
  poolConnection,
  txid,
  type Engine,
  enginesAndSqlite,
  isSqliteEngine,
} from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const seen: Record<string, unknown> = {};
let current: Engine;
let starts = 0;

@Controller('release')
class ReleaseController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly dataSource: DataSource,
  ) {}

  /** One write, commit(), a wait on something that is not the database, one read. */
  @Post('commit-then-wait')
  async commitThenWait() {
    const session = this.context.session();
    await session.insert(Example, { text: 'early' });
    const first = await txid(current, session);
    const heldBefore = checkedOut(session.connection);
    await this.context.commit();
    seen.heldWhileWaiting = checkedOut(session.connection);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = await txid(current, session); // no write yet: PG assigns none
    await session.insert(Example, { text: 'late' });
    Object.assign(seen, {
      heldBefore,
      first,
      second,
      third: await txid(current, session),
      startsAfter: starts,
    });
    return 'ok';
  }

  /** After rollback() the connection is back too, and the session goes on. */
  @Post('rollback-then-wait')
  async rollbackThenWait() {
    const session = this.context.session();
    await session.insert(Example, { text: 'undone' });
    await this.context.rollback();
    seen.heldWhileWaiting = checkedOut(session.connection);
    await session.insert(Example, { text: 'kept' });
    return 'ok';
  }

  /**
   * Pool of 1: an afterCommit callback that needs a connection of its own gets the one the request
   * just gave back (before, it waited for it until acquireTimeout and its write was lost).
   */
  @Post('outbox-after-commit')
  async outboxAfterCommit() {
    await this.context.session().insert(Example, { text: 'order' });
    this.context.afterCommit(async () => {
      seen.heldInCallback = checkedOut(this.dataSource);
      await this.factory.atomic((manager) => manager.insert(Example, { text: 'outbox' }));
    });
    return 'ok';
  }
}

describe.each(enginesAndSqlite)(
  'a session holds a connection only while a transaction is open ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      current = engine;
      t = await createTestApp(engine, {
        controllers: [ReleaseController],
        poolSize: 1,
        context: {
          acquireTimeout: 2000,
          onSessionStart: () => {
            starts++;
          },
        },
      });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM example');
      for (const key of Object.keys(seen)) delete seen[key];
      starts = 0;
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('commit() gives the connection back; the next query takes one, begins anew and runs onSessionStart again', async () => {
      await t.http().post('/release/commit-then-wait').expect(201);
      expect(seen.heldBefore).toBe(1);
      expect(seen.heldWhileWaiting).toBe(0);
      expect(seen.first).not.toBeNull();
      expect(seen.third).not.toBeNull();
      // SQLite numbers no transactions: there the second onSessionStart alone shows the new one.
      if (!isSqliteEngine(engine)) expect(seen.third).not.toBe(seen.first);
      expect(seen.startsAfter).toBe(2);
      expect(await t.texts()).toEqual(['early', 'late']);
    });

    it('rollback() gives the connection back; later work commits with the request', async () => {
      await t.http().post('/release/rollback-then-wait').expect(201);
      expect(seen.heldWhileWaiting).toBe(0);
      expect(await t.texts()).toEqual(['kept']);
    });

    it('with a pool of 1, an afterCommit callback takes the connection its request gave back', async () => {
      await t.http().post('/release/outbox-after-commit').expect(201);
      expect(seen.heldInCallback).toBe(0);
      expect(await t.texts()).toEqual(['order', 'outbox']);
    });

    it('an independent session can be opened after commit() with a pool of 1', async () => {
      await factory.runInNewContext(async () => {
        const session = context.session();
        await session.insert(Example, { text: 'context' });
        const connection = poolConnection(session);
        expect(connection).toBeDefined();
        await context.commit();
        // The context holds nothing now: the factory session gets the only connection.
        await factory.atomic(async (manager) => {
          await manager.insert(Example, { text: 'independent' });
          expect(poolConnection(manager)).toBe(connection);
        });
      });
      expect(await t.texts()).toEqual(['context', 'independent']);
    });
  },
);
