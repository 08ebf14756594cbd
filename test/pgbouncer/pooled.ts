/**
 * A PgBouncer of the spec's own (transaction pooling, few server connections so that they are
 * certainly shared) in front of the suite's PostgreSQL, and probes on the server itself. Each spec
 * of test/pgbouncer/ starts one in `beforeAll` and stops it in `afterAll`.
 */
import pg from 'pg';
import { engines, type Engine } from '../support/engines.js';
import { pgbouncerShow, startPgBouncer, type PgBouncer } from '../support/pgbouncer.js';

/** PgBouncer in front of the server, the engine that connects through it, direct probes. */
export interface Pooled {
  pgbouncer: PgBouncer;
  /** PostgreSQL through PgBouncer. */
  engine: Engine;
  /** Straight to the server, never through PgBouncer. */
  direct: pg.Pool;
  /** Backend pids of PgBouncer's server connections (`SHOW SERVERS`). */
  serverPids(): Promise<number[]>;
  /** `SHOW POOLS` for the suite's database. */
  pool(): Promise<Record<string, unknown>>;
  /** States (`pg_stat_activity.state`) of PgBouncer's server connections, seen on the server. */
  serverStates(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Server connections the spec's PgBouncer may open: fewer than the app's pool of 10. */
export const SERVER_CONNECTIONS = 3;

/** Starts a PgBouncer with `SERVER_CONNECTIONS` server connections in front of the suite's server. */
export async function startPooled(servers = SERVER_CONNECTIONS): Promise<Pooled> {
  const directUrl = process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL!;
  const pgbouncer = await startPgBouncer(directUrl, servers);
  const postgres = engines.find((engine) => engine.name === 'postgres')!;
  const engine: Engine = { ...postgres, options: { ...postgres.options, url: pgbouncer.url } };
  const direct = new pg.Pool({ connectionString: directUrl, max: 2 });
  const database = new URL(directUrl).pathname.slice(1);
  const serverPids = async () =>
    (await pgbouncerShow(pgbouncer.adminUrl, 'SERVERS'))
      .filter((row) => row.database === database)
      .map((row) => Number(row.remote_pid));
  return {
    pgbouncer,
    engine,
    direct,
    serverPids,
    pool: async () =>
      (await pgbouncerShow(pgbouncer.adminUrl, 'POOLS')).find((row) => row.database === database)!,
    serverStates: async () => {
      const { rows } = await direct.query<{ state: string }>(
        'SELECT state FROM pg_stat_activity WHERE pid = ANY($1::int[]) ORDER BY pid',
        [await serverPids()],
      );
      return rows.map((row) => row.state);
    },
    stop: async () => {
      await direct.end();
      await pgbouncer.stop();
    },
  };
}

/** Transactions idle in transaction on the whole server, seen directly (never through PgBouncer). */
export async function idleInTransactionOnServer(direct: pg.Pool): Promise<number> {
  const { rows } = await direct.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
  );
  return rows[0]!.n;
}
