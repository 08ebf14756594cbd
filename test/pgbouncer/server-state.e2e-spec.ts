/**
 * The library never relies on, nor leaves, session-level state: after a workload of every kind of
 * unit through PgBouncer, each of PgBouncer's server connections is asked what it carries
 * (settings set in the session, temporary tables, advisory locks, prepared statements, LISTEN,
 * held cursors), and the library's SQL is checked for session-level statements.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { Example } from '../support/example.entity.js';
import { SERVER_CONNECTIONS, startPooled, type Pooled } from './pooled.js';

/** What a server connection carries beyond its transaction; all zero on a clean one. */
const CARRIED = `SELECT pg_backend_pid() AS pid,
  (SELECT count(*)::int FROM pg_settings WHERE source = 'session') AS settings,
  (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_tables,
  (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
  (SELECT count(*)::int FROM pg_prepared_statements) AS prepared,
  (SELECT count(*)::int FROM pg_listening_channels()) AS listening,
  (SELECT count(*)::int FROM pg_cursors WHERE is_holdable) AS held_cursors`;

/** Source files of the library, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

describe('through PgBouncer (transaction pooling): no session-level state', () => {
  let pooled: Pooled;
  let t: TestApp;

  beforeAll(async () => {
    pooled = await startPooled();
    t = await createTestApp(pooled.engine, {
      context: { onSessionStart: (session) => session.query("SET LOCAL lock_timeout = '3s'") },
    });
  });
  afterAll(async () => {
    await t?.close();
    await pooled?.stop();
  });

  it('after every kind of unit, no server connection carries anything; the app pool of 10 used 3', async () => {
    const context = t.app.get(SessionContext);
    const factory = t.app.get(SessionFactory);
    const unit = (i: number) =>
      factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: `unit-${i}` });
        await context.atomic((m) => m.query('SELECT pg_sleep(0.02)'), {
          propagation: Propagation.NESTED,
        });
        await context.atomic((m) => m.insert(Example, { text: `new-${i}` }), {
          propagation: Propagation.REQUIRES_NEW,
          isolationLevel: 'SERIALIZABLE',
          timeout: 5000,
        });
        await factory.atomic((m) => m.count(Example), { readOnly: true });
        await context.commit();
        await context.session().count(Example);
      });
    // Two units at a time: each holds one server connection and takes a second (REQUIRES_NEW,
    // the factory), so three units could take all three and wait for each other (pool-wait spec).
    for (let i = 0; i < 20; i += 2) await Promise.all([unit(i), unit(i + 1)]);
    expect(await t.rows()).toBe(40);
    expect((await pooled.serverPids()).length).toBeLessThanOrEqual(SERVER_CONNECTIONS);

    // Hold a transaction on each server connection at once, so that every one of them answers.
    const clients = Array.from(
      { length: SERVER_CONNECTIONS },
      () => new pg.Client({ connectionString: pooled.pgbouncer.url }),
    );
    try {
      await Promise.all(clients.map((client) => client.connect()));
      await Promise.all(clients.map((client) => client.query('BEGIN')));
      const carried = await Promise.all(
        clients.map(async (client) => (await client.query(CARRIED)).rows[0]),
      );
      await Promise.all(clients.map((client) => client.query('COMMIT')));
      expect(new Set(carried.map((row) => row.pid)).size).toBe(SERVER_CONNECTIONS);
      for (const { pid: _pid, ...row } of carried) {
        expect(row).toEqual({
          settings: 0,
          temp_tables: 0,
          advisory_locks: 0,
          prepared: 0,
          listening: 0,
          held_cursors: 0,
        });
      }
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    const pool = await pooled.pool();
    expect([Number(pool.cl_waiting), Number(pool.sv_active)]).toEqual([0, 0]);
    expect((await pooled.serverStates()).every((state) => state === 'idle')).toBe(true);
  });

  it("the library's SQL has no session-level statement", () => {
    const sessionLevel =
      /['"`][^'"`]*\b(SET (?!LOCAL |TRANSACTION )|RESET |DISCARD |LISTEN |PREPARE |WITH HOLD|TEMP(ORARY)? TABLE|pg_advisory_lock|pg_advisory_lock_shared)/;
    const root = fileURLToPath(new URL('../../src', import.meta.url));
    const offending = sources(root)
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((line, i) => ({ where: `${file}:${i + 1}`, line })),
      )
      .filter(({ line }) => !/^\s*(\*|\/\/|\/\*)/.test(line) && sessionLevel.test(line));
    expect(offending).toEqual([]);
    // The one SET it sends is transaction-local, in the same round trip as START TRANSACTION.
    const dialect = readFileSync(join(root, 'session/transaction-dialect.ts'), 'utf8');
    expect(dialect).toContain('SET LOCAL statement_timeout');
  });
});
