/**
 * The tenant pattern through a real PgBouncer: `onSessionStart` sets `app.tenant` with
 * `set_config(..., true)` (transaction-local). Concurrent requests of eight tenants share three
 * server connections; each sees its own tenant, and none finds another's left on the connection.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Get, Headers } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { SessionContext } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { Example } from '../support/example.entity.js';
import {
  idleInTransactionOnServer,
  SERVER_CONNECTIONS,
  startPooled,
  type Pooled,
} from './pooled.js';

/** The request's tenant, as an app would carry it (nestjs-cls, a middleware). */
const tenants = new AsyncLocalStorage<string>();

/** What each transaction saw: the setting it found before setting it, and after. */
interface Seen {
  tenant: string;
  found: string | null;
  pid: number;
  during: string[];
}
const found = new Map<string, string | null>();

async function setTenant(session: EntityManager): Promise<void> {
  const tenant = tenants.getStore()!;
  const rows: Array<{ found: string | null }> = await session.query(
    "SELECT current_setting('app.tenant', true) AS found",
  );
  found.set(tenant, rows[0]!.found);
  await session.query("SELECT set_config('app.tenant', $1, true)", [tenant]);
}

@Controller('tenant')
class TenantController {
  constructor(private readonly context: SessionContext) {}

  @Get()
  read(@Headers('x-tenant') tenant: string): Promise<Seen> {
    return tenants.run(tenant, async () => {
      const session = this.context.session();
      const during: string[] = [];
      const pid: Array<{ pid: number }> = await session.query('SELECT pg_backend_pid() AS pid');
      for (let step = 0; step < 3; step++) {
        await session.query('SELECT pg_sleep(0.02)');
        const rows: Array<{ now: string }> = await session.query(
          "SELECT current_setting('app.tenant') AS now",
        );
        during.push(rows[0]!.now);
      }
      await session.insert(Example, { text: tenant });
      return { tenant, found: found.get(tenant) ?? null, pid: pid[0]!.pid, during };
    });
  }
}

describe('through PgBouncer (transaction pooling): tenants with set_config(..., true)', () => {
  let pooled: Pooled;
  let t: TestApp;

  beforeAll(async () => {
    pooled = await startPooled();
    t = await createTestApp(pooled.engine, {
      controllers: [TenantController],
      context: { onSessionStart: setTenant },
    });
  });
  afterAll(async () => {
    await t?.close();
    await pooled?.stop();
  });

  it('concurrent requests of different tenants each see only their own, and nothing is left over', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `tenant-${i}`);
    for (let round = 0; round < 3; round++) {
      found.clear();
      const seen = await Promise.all(
        names.map(
          async (name) =>
            (await t.http().get('/tenant').set('x-tenant', name).expect(200)).body as Seen,
        ),
      );
      for (const row of seen) {
        expect(row.during).toEqual([row.tenant, row.tenant, row.tenant]);
        // Before its own set_config, a transaction finds no tenant: '' once the connection has
        // had the setting in an earlier transaction, null on a new connection.
        expect([null, '']).toContain(row.found);
      }
      // Eight tenants on at most three server connections: connections were reused across tenants.
      const pids = new Set(seen.map((row) => row.pid));
      expect(pids.size).toBeLessThanOrEqual(SERVER_CONNECTIONS);
      expect(pids.size).toBeLessThan(names.length);
    }
    expect(await t.rows()).toBe(names.length * 3);
    expect(await idleInTransactionOnServer(pooled.direct)).toBe(0);
  });

  it('the probe can see a leak: a session-level set_config does reach another client', async () => {
    // The control experiment, outside the library: what the tenant test would catch.
    const leaking = await startPooled(1);
    const pg = (await import('pg')).default;
    const a = new pg.Client({ connectionString: leaking.pgbouncer.url });
    const b = new pg.Client({ connectionString: leaking.pgbouncer.url });
    try {
      await a.connect();
      await b.connect();
      await a.query("SELECT set_config('app.tenant', 'leaked', false)");
      const { rows } = await b.query("SELECT current_setting('app.tenant', true) AS found");
      expect(rows[0].found).toBe('leaked');
    } finally {
      await a.end();
      await b.end();
      await leaking.stop();
    }
  });
});
