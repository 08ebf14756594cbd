/**
 * The testing kit through a real PgBouncer: a test's transaction is one server transaction that
 * every request of the test joins (PgBouncer keeps it on one server connection until it ends),
 * and `tx.rollback()` leaves nothing on the server.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Get, Post } from '@nestjs/common';
import { SessionContext } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { Example } from '../support/example.entity.js';
import { idleInTransactionOnServer, startPooled, type Pooled } from './pooled.js';

@Controller('kit')
class KitController {
  constructor(private readonly context: SessionContext) {}

  @Post()
  async insert() {
    await this.context.session().insert(Example, { text: 'in test' });
    return this.server();
  }

  @Get()
  async server() {
    const rows: Array<{ pid: number; txid: string | null; n: number }> = await this.context
      .session()
      .query(
        'SELECT pg_backend_pid() AS pid, txid_current_if_assigned()::text AS txid, (SELECT count(*)::int FROM example) AS n',
      );
    return rows[0];
  }
}

describe('through PgBouncer (transaction pooling): TestTransaction', () => {
  let pooled: Pooled;
  let t: TestApp;

  beforeAll(async () => {
    pooled = await startPooled();
    t = await createTestApp(pooled.engine, { controllers: [KitController] });
  });
  afterAll(async () => {
    await t?.close();
    await pooled?.stop();
  });

  it('every request of a test joins its one server transaction; the rollback undoes them all', async () => {
    const tx = await TestTransaction.start(t.app);
    const first = (await t.http().post('/kit').expect(201)).body;
    const second = (await t.http().post('/kit').expect(201)).body;
    const read = (await t.http().get('/kit').expect(200)).body;
    expect(first.txid).not.toBeNull();
    expect([second.txid, read.txid]).toEqual([first.txid, first.txid]);
    expect([second.pid, read.pid]).toEqual([first.pid, first.pid]);
    expect(read.n).toBe(2);
    const { rows } = await pooled.direct.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM example',
    );
    expect(rows[0]!.n).toBe(0);
    await tx.rollback();
    expect(await t.rows()).toBe(0);
    expect(await idleInTransactionOnServer(pooled.direct)).toBe(0);
  });
});
