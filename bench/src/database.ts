/** The bench's table, shared by the drivers (`run`, `promises`, `profile`). */
import pg from 'pg';
import { DATABASE_URL, SEED_ROWS, TABLE } from './shared.js';

/** Runs `work` on a client of its own, outside every variant's pool. */
export async function withClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates the bench table if needed and seeds it afresh with `SEED_ROWS` rows. */
export async function resetTable(): Promise<void> {
  await withClient(async (client) => {
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${TABLE} (id serial PRIMARY KEY, name varchar NOT NULL)`,
    );
    await client.query(`TRUNCATE ${TABLE} RESTART IDENTITY`);
    await client.query(
      `INSERT INTO ${TABLE} (name) SELECT 'seed-' || g FROM generate_series(1, ${SEED_ROWS}) g`,
    );
    await client.query(`VACUUM ANALYZE ${TABLE}`);
  });
}

/** The server's `server_version`. */
export async function databaseVersion(): Promise<string> {
  return withClient(
    async (client) => (await client.query('SHOW server_version')).rows[0].server_version,
  );
}
