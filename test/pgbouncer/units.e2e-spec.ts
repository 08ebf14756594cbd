/**
 * Through a real PgBouncer in transaction pooling mode (3 server connections for an app pool of
 * 10): lazy sessions, commit before the response, REQUIRED / REQUIRES_NEW / NESTED, the factory's
 * parallel sessions and a per-transaction statement timeout. What happened is asked of the server.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Post } from '@nestjs/common';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  TransactionTimeoutError,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { checkedOut, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { idleInTransactionOnServer, startPooled, type Pooled } from './pooled.js';

let pooled: Pooled;
let t: TestApp;

@Controller('units')
class UnitsController {
  constructor(private readonly context: SessionContext) {}

  @Get('lazy')
  async lazy() {
    this.context.session();
    const pool = await pooled.pool();
    return { serversLinked: Number(pool.sv_active), checkedOut: checkedOut(t.dataSource) };
  }

  @Post('insert')
  async insert() {
    await this.context.session().insert(Example, { text: 'committed' });
    return 'ok';
  }
}

/** Rows of `example` on the server itself. */
async function texts(): Promise<string[]> {
  const { rows } = await pooled.direct.query<{ text: string }>(
    'SELECT text FROM example ORDER BY text',
  );
  return rows.map((row) => row.text);
}

describe('through PgBouncer (transaction pooling): units of work', () => {
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    pooled = await startPooled();
    t = await createTestApp(pooled.engine, { controllers: [UnitsController] });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => pooled.direct.query('DELETE FROM example'));
  afterAll(async () => {
    await t?.close();
    await pooled?.stop();
  });

  it('a request that takes a session but never queries holds no client and no server connection', async () => {
    const { body } = await t.http().get('/units/lazy').expect(200);
    expect(body).toEqual({ serversLinked: 0, checkedOut: 0 });
  });

  it('commits on the server before the response is sent, leaving nothing idle in transaction', async () => {
    let atResponse: { rows: string[]; idle: number } | undefined;
    await t
      .http()
      .post('/units/insert')
      .expect(201)
      .then(async () => {
        atResponse = { rows: await texts(), idle: await idleInTransactionOnServer(pooled.direct) };
      });
    expect(atResponse).toEqual({ rows: ['committed'], idle: 0 });
  });

  it('REQUIRED joins the transaction; REQUIRES_NEW commits its own, which survives the outer rollback', async () => {
    const seen: Record<string, string | null> = {};
    await expect(
      factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'outer' });
        seen.outer = await txid(pooled.engine, context.session());
        seen.required = await context.atomic((manager) => txid(pooled.engine, manager));
        seen.requiresNew = await context.atomic(
          async (manager) => {
            await manager.insert(Example, { text: 'independent' });
            return txid(pooled.engine, manager);
          },
          { propagation: Propagation.REQUIRES_NEW },
        );
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(seen.outer).not.toBeNull();
    expect(seen.required).toBe(seen.outer);
    expect(seen.requiresNew).not.toBeNull();
    expect(seen.requiresNew).not.toBe(seen.outer);
    expect(await texts()).toEqual(['independent']);
  });

  it('NESTED is a savepoint: its rollback keeps the outer work, in one server transaction', async () => {
    const ids = new Set<string | null>();
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'outer' });
      ids.add(await txid(pooled.engine, context.session()));
      await context
        .atomic(
          async (manager) => {
            await manager.insert(Example, { text: 'rolled back' });
            ids.add(await txid(pooled.engine, manager));
            throw new Error('inner fails');
          },
          { propagation: Propagation.NESTED },
        )
        .catch(() => undefined);
      await context.atomic(
        async (manager) => {
          await manager.insert(Example, { text: 'nested kept' });
          ids.add(await txid(pooled.engine, manager));
        },
        { propagation: Propagation.NESTED },
      );
    });
    expect(ids.size).toBe(1);
    expect(await texts()).toEqual(['nested kept', 'outer']);
  });

  it("the factory's sessions run in parallel, each in its own server transaction", async () => {
    const started = Date.now();
    const seen = await Promise.all(
      [0, 1, 2].map(() =>
        factory.atomic(async (manager) => {
          await manager.query('SELECT pg_sleep(0.5)');
          const rows: Array<{ pid: number }> = await manager.query(
            'SELECT pg_backend_pid() AS pid',
          );
          return rows[0]!.pid;
        }),
      ),
    );
    // One after another they would take 1.5 s.
    expect(Date.now() - started).toBeLessThan(1400);
    expect(new Set(seen).size).toBe(3);
  });

  it('a statement timeout set per transaction (timeout option, SET LOCAL) cancels, then is gone', async () => {
    const attempt = context.atomic((manager) => manager.query('SELECT pg_sleep(2)'), {
      timeout: 200,
    });
    await expect(attempt).rejects.toBeInstanceOf(TransactionTimeoutError);
    // Every server connection PgBouncer has is back to the server's default.
    const settings = await Promise.all(
      [0, 1, 2].map(() =>
        factory.atomic(async (manager) => {
          await manager.query('SELECT pg_sleep(0.1)');
          const rows: Array<{ value: string }> = await manager.query(
            "SELECT current_setting('statement_timeout') AS value",
          );
          return rows[0]!.value;
        }),
      ),
    );
    expect(settings).toEqual(['0', '0', '0']);
    expect(await idleInTransactionOnServer(pooled.direct)).toBe(0);
  });
});
