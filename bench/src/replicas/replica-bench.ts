/**
 * Replicas bench: a read-heavy mix (90% read-only reads, 10% writes) against the same app on the
 * primary only, on primary + one hot standby, and on both with consistency tokens (each load
 * client carries its own). Reports requests/s, p99, connections on each server (pg_stat_activity,
 * sampled every 100 ms), where the statements ran, and stale reads: a client's read of the row it
 * wrote last that did not find it. `npm run bench:replicas`.
 * Starts its own embedded PostgreSQL 18 primary and standby (test/support/standby.ts).
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../../test/support/embedded-postgres.js';
import { freePort } from '../../../test/support/free-port.js';
import { startStandby } from '../../../test/support/standby.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const MODES = ['primary', 'replica', 'tokens'] as const;
const TOKEN = 'x-consistency-token';

interface Result {
  mode: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** Reads of the row their client wrote last that did not find it. */
  stale: number;
  /** Reads that looked for such a row. */
  checked: number;
  /** Busy connections per server (pg_stat_activity state <> 'idle'): mean and peak while the load ran. */
  connections: Record<string, { mean: number; peak: number }>;
  /** Requests answered from each server. */
  placement: Record<string, number>;
}

async function main(): Promise<void> {
  const server = await startEmbeddedPostgres('bench', 'ntc-bench-primary-');
  const { pg: primaryPg, port: primaryPort, url: primary } = server;
  await sql(
    primary,
    'CREATE TABLE replica_bench_item (id serial PRIMARY KEY, name varchar NOT NULL); ' +
      "INSERT INTO replica_bench_item (name) SELECT 'seed' || g FROM generate_series(1, 1000) g",
  );
  const standby = await startStandby(primary, await freePort());
  const servers = { [primaryPort]: 'primary', [standby.port]: 'replica' } as Record<string, string>;
  const order = (round: number) => (round % 2 ? [...MODES] : [...MODES].reverse());
  const results: Result[] = [];
  const version = await sql(primary, 'SHOW server_version');
  let commits: CommitCost[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of order(round)) {
        const result = await measure(mode, primary, standby.url, servers);
        console.log(JSON.stringify(result));
        results.push(result);
      }
    }
    commits = await commitCost(primary);
  } finally {
    await standby.stop();
    await primaryPg.stop();
  }
  await report(results, version, commits);
}

/** What a COMMIT costs, plain and with the WAL position of a replicated primary's (µs per commit). */
interface CommitCost {
  commit: string;
  wrote: boolean;
  micros: number;
}

const COMMITS = Number(process.env.BENCH_COMMITS ?? 2000);
/** As src/session/wal-position.ts sends it. */
const WITH_POSITION =
  'SELECT txid_current_if_assigned() IS NOT NULL AS wrote; COMMIT; ' +
  'SELECT p::text AS position, (pg_walfile_name_offset(p)).file_offset AS offset, ' +
  "current_setting('wal_block_size')::int AS page FROM pg_current_wal_insert_lsn() AS p";

/**
 * Times the COMMIT statement alone over one pg connection (client and server on this machine),
 * for a transaction that wrote one row and one that only read, plain and as the library sends it
 * on a primary with replicas; the four cells alternate, best of three runs each.
 */
async function commitCost(url: string): Promise<CommitCost[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const cells: Array<[string, string, boolean]> = [
    ['COMMIT', 'COMMIT', true],
    ['with position', WITH_POSITION, true],
    ['COMMIT', 'COMMIT', false],
    ['with position', WITH_POSITION, false],
  ];
  const best = new Map<string, number>();
  try {
    for (let run = 0; run < 3; run++) {
      for (const [name, commit, wrote] of cells) {
        let spent = 0;
        for (let i = 0; i < COMMITS; i++) {
          await client.query('BEGIN');
          await client.query(
            wrote ? "INSERT INTO replica_bench_item (name) VALUES ('c')" : 'SELECT 1',
          );
          const started = performance.now();
          await client.query(commit);
          spent += performance.now() - started;
        }
        const key = `${name}|${wrote}`;
        const micros = (spent / COMMITS) * 1000;
        best.set(key, Math.min(best.get(key) ?? Infinity, micros));
      }
    }
  } finally {
    await client.end();
  }
  return cells.map(([name, , wrote]) => ({
    commit: name,
    wrote,
    micros: Number(best.get(`${name}|${wrote}`)!.toFixed(1)),
  }));
}

async function measure(
  mode: string,
  primary: string,
  replica: string,
  servers: Record<string, string>,
): Promise<Result> {
  const port = await freePort();
  const server = fork(path.join(here, 'replica-server.js'), [mode, String(port)], {
    env: { ...process.env, BENCH_PRIMARY_URL: primary, BENCH_REPLICA_URL: replica },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('message', () => resolve());
    server.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  try {
    await load(port, 1); // warm up the pools
    const sampling = sample([primary, replica], servers);
    const { rps, p50, p99, errors, stale, checked } = await load(port, SECONDS);
    const connections = await sampling.stop();
    const placement = Object.fromEntries(
      Object.entries(JSON.parse(await get(port, '/placement')) as Record<string, number>).map(
        ([p, n]) => [servers[p] ?? p, n],
      ),
    );
    return { mode, rps, p50, p99, errors, stale, checked, connections, placement };
  } finally {
    await stop(server);
  }
}

/**
 * Runs the 90/10 mix for `seconds` at CONCURRENCY requests in flight, each worker a client: after
 * its first write, its reads ask for the row it wrote last (with its consistency token, which is
 * only there in mode `tokens`).
 */
async function load(port: number, seconds: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let errors = 0;
  let stale = 0;
  let checked = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (client: number) => {
    let token: string | undefined;
    let lastId: number | undefined;
    for (let sent = client; performance.now() < end; sent++) {
      const write = sent % 10 === 9;
      const started = performance.now();
      const path = write ? '/write' : lastId === undefined ? '/read' : `/read?id=${lastId}`;
      const answer = await call(agent, port, write ? 'POST' : 'GET', path, token);
      latencies.push(performance.now() - started);
      if (answer.status >= 400) {
        errors++;
        continue;
      }
      token = answer.token ?? token;
      const body = JSON.parse(answer.body) as { id?: number; found?: boolean };
      if (write) lastId = body.id;
      else if (path !== '/read') {
        checked++;
        if (body.found !== true) stale++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, client) => worker(client)));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Number(latencies[Math.floor(latencies.length * q)]!.toFixed(1));
  return {
    rps: Math.round(latencies.length / seconds),
    p50: at(0.5),
    p99: at(0.99),
    errors,
    stale,
    checked,
  };
}

function call(
  agent: http.Agent,
  port: number,
  method: string,
  url: string,
  token: string | undefined,
): Promise<{ status: number; body: string; token?: string }> {
  return new Promise((resolve) => {
    const headers = token === undefined ? {} : { [TOKEN]: token };
    const req = http.request(
      { agent, port, host: '127.0.0.1', method, path: url, headers },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            token: res.headers[TOKEN] as string | undefined,
          }),
        );
      },
    );
    req.on('error', () => resolve({ status: 599, body: '' }));
    req.end();
  });
}

function get(port: number, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ port, host: '127.0.0.1', path: url }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** Samples the busy (not idle: in a statement or a transaction) connections to the bench database on each server every 100 ms. */
function sample(urls: string[], servers: Record<string, string>) {
  const counts = new Map<string, number[]>();
  let running = true;
  const loop = (async () => {
    const clients = urls.map((url) => new pg.Client({ connectionString: url }));
    await Promise.all(clients.map((client) => client.connect()));
    while (running) {
      for (const client of clients) {
        const { rows } = await client.query(
          "SELECT count(*) FILTER (WHERE state <> 'idle')::int AS n, inet_server_port() AS port FROM pg_stat_activity WHERE datname = 'bench' AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        );
        const name = servers[rows[0].port as number]!;
        counts.set(name, [...(counts.get(name) ?? []), rows[0].n as number]);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await Promise.all(clients.map((client) => client.end()));
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      const summary: Record<string, { mean: number; peak: number }> = {};
      for (const [name, values] of counts) {
        const mean = values.reduce((a, b) => a + b, 0) / values.length;
        summary[name] = { mean: Number(mean.toFixed(1)), peak: Math.max(...values) };
      }
      return summary;
    },
  };
}

/** Runs `text` on `url`; the first column of the last result's first row, as text. */
async function sql(url: string, text: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const result = (await client.query(text)) as unknown as pg.QueryResult | pg.QueryResult[];
  await client.end();
  const last = Array.isArray(result) ? result[result.length - 1]! : result;
  return String(Object.values(last.rows[0] ?? {})[0] ?? '');
}

function stop(server: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    server.once('exit', () => resolve());
    server.kill('SIGTERM');
  });
}

async function report(results: Result[], pgVersion: string, commits: CommitCost[]): Promise<void> {
  const git = (args: string[]) => execFileSync('git', args).toString().trim();
  const lines = [
    `# Replicas bench (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; Node ${process.version}; embedded PostgreSQL ${pgVersion} (primary and standby on the same machine); commit ${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain']) ? ' (dirty)' : ''}.`,
    `Load: ${CONCURRENCY} requests in flight, ${SECONDS} s per cell, ${ROUNDS} rounds alternating the order; 9 of 10 requests GET /read (a read-only sessionFactory.atomic(), one SELECT by primary key: after a client's first write, the row it wrote last), 1 of 10 POST /write (an INSERT in the request's unit of work). Each of the ${CONCURRENCY} load clients carries its own consistency token in mode \`tokens\` (header \`${TOKEN}\`). Pool size ${process.env.BENCH_POOL ?? 10} per server. A stale read: a read of the row its client wrote last that did not find it.`,
    '',
    '| mode | req/s | p50 ms | p99 ms | errors | stale reads / checked | busy connections primary (mean / peak) | busy connections replica (mean / peak) | answered by primary | answered by replica |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const c = (name: string) =>
        r.connections[name] ? `${r.connections[name].mean} / ${r.connections[name].peak}` : '0 / 0';
      return `| ${r.mode} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.stale} / ${r.checked} | ${c('primary')} | ${c('replica')} | ${r.placement.primary ?? 0} | ${r.placement.replica ?? 0} |`;
    }),
    '',
    `COMMIT alone, ${COMMITS} per cell over one connection, best of 3 (µs per commit; \`with position\` is what the library sends on a primary with replicas):`,
    '',
    '| transaction | COMMIT | with position |',
    '|---|---:|---:|',
    ...[true, false].map((wrote) => {
      const cell = (commit: string) =>
        commits.find((c) => c.commit === commit && c.wrote === wrote)?.micros ?? '';
      return `| ${wrote ? 'wrote a row' : 'read only'} | ${cell('COMMIT')} | ${cell('with position')} |`;
    }),
    '',
  ];
  const out = path.resolve(
    here,
    `../../../../../results/${new Date().toISOString().slice(0, 10)}-replicas.md`,
  );
  await writeFile(process.env.BENCH_OUT ?? out, lines.join('\n'));
  console.log(lines.join('\n'));
}

await main();
