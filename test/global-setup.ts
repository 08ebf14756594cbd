// `.ts`: Jest loads the global setup as CommonJS, without the suite's `.js` moduleNameMapper.
import { startPgBouncer } from './support/pgbouncer.ts';
import { startReplicaPair } from './support/replica-pair.ts';
import { startEmbeddedPostgres } from './support/embedded-postgres.ts';
import { freePort } from './support/free-port.ts';

export { freePort };

/**
 * Starts the suite's databases: an embedded PostgreSQL unless DATABASE_URL points at one, the
 * replica suite's standby of it, and with PGBOUNCER=1 a PgBouncer in front of the primary
 * (DATABASE_URL then names PgBouncer, DATABASE_DIRECT_URL the server).
 */
export default async function globalSetup(): Promise<void> {
  if (!process.env.DATABASE_URL) await startPostgres();
  // test/replicas/: a standby copies the primary itself, so it starts before any proxy in front.
  await startReplicaPair();
  process.env.DATABASE_DIRECT_URL = process.env.DATABASE_URL;
  if (process.env.PGBOUNCER === '1') {
    const pgbouncer = await startPgBouncer(process.env.DATABASE_URL!);
    process.env.DATABASE_URL = pgbouncer.url;
    process.env.PGBOUNCER_ADMIN_URL = pgbouncer.adminUrl;
    (globalThis as Record<string, unknown>).__pgbouncer = pgbouncer;
  }
}

/** Starts the embedded PostgreSQL and points DATABASE_URL at it. */
async function startPostgres(): Promise<void> {
  const { pg, url } = await startEmbeddedPostgres('test');
  process.env.DATABASE_URL = url;
  (globalThis as Record<string, unknown>).__embeddedPostgres = pg;
}
