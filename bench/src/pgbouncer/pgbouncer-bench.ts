/**
 * PgBouncer bench (`npm run bench:pgbouncer`): two app instances (pool of 20 each), a read-heavy
 * mix (90% readOnly reads, 10% INSERTs) from 50 HTTP connections, straight to PostgreSQL and
 * through PgBouncer in transaction pooling mode (5 server connections), alternating over rounds.
 * Reports requests/s, p99 latency and the server connections PostgreSQL had (pg_stat_activity,
 * sampled every 100 ms). Writes bench/results/<date>-pgbouncer.md.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { startPgBouncer } from '../../../test/support/pgbouncer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DATABASE = 'bench_pgbouncer';
const INSTANCES = 2;
const CONNECTIONS = 50;
const APP_POOL = 20;
const PGBOUNCER_POOL = Number(process.env.BENCH_PGBOUNCER_POOL ?? 5);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PORT = Number(process.env.BENCH_PORT ?? 3937);

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function prepareDatabase(): Promise<string> {
  const admin = new pg.Client({ connectionString: SERVER });
  await admin.connect();
  const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
  if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE}`);
  const version = (await admin.query('SHOW server_version')).rows[0].server_version as string;
  await admin.end();
  const client = new pg.Client({ connectionString: withDatabase(SERVER, DATABASE) });
  await client.connect();
  await client.query('DROP TABLE IF EXISTS bench_item');
  await client.query('CREATE TABLE bench_item (id serial PRIMARY KEY, name varchar NOT NULL)');
  await client.query(
    "INSERT INTO bench_item (name) SELECT 'seed-' || i FROM generate_series(1, 1000) i",
  );
  await client.end();
  return version;
}

function startApp(url: string, port: number): Promise<ChildProcess> {
  const child = fork(path.join(here, 'mix-server.js'), [String(port)], {
    env: { ...process.env, BENCH_DATABASE_URL: url, BENCH_POOL: String(APP_POOL) },
  });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`app exited with ${code}`)));
  });
}

function load(port: number, connections: number, duration: number) {
  return autocannon({ url: `http://127.0.0.1:${port}/mix`, connections, duration });
}

interface Cell {
  rps: number;
  p99: number;
  errors: number;
  maxServers: number;
  meanServers: number;
}

/** One measured run: both instances loaded at once, server connections sampled meanwhile. */
async function measure(url: string, probe: pg.Client): Promise<Cell> {
  const apps = await Promise.all(
    Array.from({ length: INSTANCES }, (_, i) => startApp(url, PORT + i)),
  );
  try {
    const each = CONNECTIONS / INSTANCES;
    await Promise.all(apps.map((_, i) => load(PORT + i, each, 1)));
    const samples: number[] = [];
    const sampler = setInterval(() => {
      void probe
        .query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
          [DATABASE],
        )
        .then((result) => samples.push(result.rows[0].n as number));
    }, 100);
    const results = await Promise.all(apps.map((_, i) => load(PORT + i, each, DURATION)));
    clearInterval(sampler);
    return {
      rps: results.reduce((sum, r) => sum + r.requests.average, 0),
      p99: Math.max(...results.map((r) => r.latency.p99)),
      errors: results.reduce((sum, r) => sum + r.errors + r.non2xx, 0),
      maxServers: Math.max(...samples),
      meanServers: samples.reduce((sum, n) => sum + n, 0) / samples.length,
    };
  } finally {
    for (const app of apps) {
      const exited = new Promise((resolve) => app.once('exit', resolve));
      app.send('stop');
      await exited;
    }
  }
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const serverVersion = await prepareDatabase();
const direct = withDatabase(SERVER, DATABASE);
const probe = new pg.Client({ connectionString: direct });
await probe.connect();
const cells: Record<string, Cell[]> = { direct: [], pgbouncer: [] };
let pgbouncerVersion = '';
/** One run in `mode`; PgBouncer runs only during its own runs, so that its idle server connections never count in a direct run. */
async function run(mode: 'direct' | 'pgbouncer'): Promise<Cell> {
  if (mode === 'direct') return measure(direct, probe);
  const pgbouncer = await startPgBouncer(SERVER, PGBOUNCER_POOL);
  pgbouncerVersion = execFileSync('pgbouncer', ['--version']).toString().split('\n')[0]!;
  try {
    return await measure(withDatabase(pgbouncer.url, DATABASE), probe);
  } finally {
    await pgbouncer.stop();
  }
}
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order =
      round % 2 === 0 ? (['direct', 'pgbouncer'] as const) : (['pgbouncer', 'direct'] as const);
    for (const mode of order) {
      const cell = await run(mode);
      console.log(`[bench:pgbouncer] round ${round + 1} ${mode.padEnd(9)} ${JSON.stringify(cell)}`);
      cells[mode]!.push(cell);
    }
  }
} finally {
  await probe.end();
}

const row = (mode: string, label: string) => {
  const runs = cells[mode]!;
  const pick = (key: keyof Cell) => median(runs.map((cell) => cell[key]));
  return `| ${label} | ${pick('rps').toFixed(0)} | ${pick('p99').toFixed(0)} | ${Math.max(...runs.map((c) => c.maxServers))} | ${pick('meanServers').toFixed(1)} | ${runs.reduce((s, c) => s + c.errors, 0)} |`;
};
const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const report = [
  `# PgBouncer bench ${new Date().toISOString().slice(0, 10)}`,
  '',
  `${INSTANCES} app instances (Nest 12 + TypeORM + this library at ${commit}, pg pool of ${APP_POOL} each), ${CONNECTIONS} HTTP connections split between them (autocannon), GET /mix: 9 in 10 requests a readOnly transaction reading one row by primary key, 1 in 10 an INSERT committed by the interceptor. ${DURATION} s per run after 1 s of warm-up, ${ROUNDS} rounds, modes alternating; medians (max over rounds for the peak).`,
  '',
  `Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; PostgreSQL ${serverVersion}; ${pgbouncerVersion} (\`pool_mode = transaction\`, \`default_pool_size = ${PGBOUNCER_POOL}\`). Server, PgBouncer, both apps and the load generator share the cores, and other work may run on the machine at the same time: read the connection columns first; throughput is indicative only.`,
  '',
  '| path | requests/s | p99 ms | server connections, peak | server connections, mean | errors |',
  '|---|---:|---:|---:|---:|---:|',
  row('direct', 'direct to PostgreSQL'),
  row('pgbouncer', 'through PgBouncer'),
  '',
].join('\n');
console.log(`\n${report}`);
const dir = path.resolve(here, '../../../../../results');
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, `${new Date().toISOString().slice(0, 10)}-pgbouncer.md`), report);
