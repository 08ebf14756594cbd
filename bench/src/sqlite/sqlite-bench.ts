/**
 * The SQLite bench (`npm run bench:sqlite`, see bench/README.md): each variant of
 * `bench/src/sqlite/variants/` on better-sqlite3 (a file under bench/.tmp/sqlite, WAL), loaded
 * with autocannon on GET /read, POST /write and POST /mixed (every FAIL_EVERY-th request throws
 * after writing) at a few concurrencies, each cell on a fresh server and a fresh copy of the seeded
 * database. Reports speed, the error rate and, after each cell, what the database really holds
 * against what the responses promised. Writes `bench/results/<date>-sqlite.md`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { SEED_ROWS } from './sqlite-shared.js';
import type { SqliteServerCommand, SqliteServerState } from './sqlite-server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** bench/ (compiled to bench/.tmp/js/bench/sqlite/, so that ../../../.. is bench/). */
const benchDir = path.resolve(here, '../../../..');
const sqliteDir = path.join(benchDir, '.tmp', 'sqlite');
const template = path.join(sqliteDir, 'template.db');
const cellFile = path.join(sqliteDir, 'cell.db');

const VARIANTS = (
  process.env.BENCH_VARIANTS ?? 'baseline,nestjs-typeorm-context,nestjs-cls,typeorm-transactional'
).split(',');
const ENDPOINTS = (process.env.BENCH_ENDPOINTS ?? 'read,write,mixed').split(',') as EndpointName[];
const CONCURRENCIES = (process.env.BENCH_CONNECTIONS ?? '1,10,50').split(',').map(Number);
/** Seconds measured per cell (after WARMUP seconds at the same concurrency, not measured). */
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const WARMUP = 1;
/** Every FAIL_EVERY-th request of /mixed asks its handler to throw after writing. */
const FAIL_EVERY = 4;
/** Requests `--trace` sends at once. */
const TRACE_REQUESTS = 6;
const PORT = Number(process.env.BENCH_PORT ?? 3927);

type EndpointName = 'read' | 'write' | 'mixed';

// bench's own better-sqlite3, the same copy the servers hand TypeORM.
const requireHere = createRequire(import.meta.url);
type Database = {
  prepare(sql: string): { all(...args: unknown[]): unknown[]; get(): unknown; run(): unknown };
  exec(sql: string): void;
  pragma(sql: string): unknown;
  close(): void;
};
const BetterSqlite3 = requireHere('better-sqlite3') as new (
  file: string,
  options?: { readonly?: boolean },
) => Database;

/** Creates the seeded template database every cell starts from. */
function createTemplate(): string {
  rmSync(sqliteDir, { recursive: true, force: true });
  mkdirSync(sqliteDir, { recursive: true });
  const db = new BetterSqlite3(template);
  db.pragma('journal_mode = WAL');
  db.exec(
    `CREATE TABLE bench_item (id integer PRIMARY KEY AUTOINCREMENT NOT NULL, name varchar NOT NULL);
     CREATE INDEX bench_item_name ON bench_item (name);
     WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${SEED_ROWS})
     INSERT INTO bench_item (name) SELECT 'seed-' || i FROM g;`,
  );
  const version = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  db.close();
  return version;
}

/** A fresh copy of the template at `cellFile`. */
function freshDatabase(): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(cellFile + suffix, { force: true });
  copyFileSync(template, cellFile);
}

/** The names of the rows written after the seed, as the database holds them after the cell. */
function writtenRows(): string[] {
  const db = new BetterSqlite3(cellFile, { readonly: true });
  try {
    return (
      db.prepare(`SELECT name FROM bench_item WHERE id > ${SEED_ROWS}`).all() as Array<{
        name: string;
      }>
    ).map((row) => row.name);
  } finally {
    db.close();
  }
}

/** A running server of one variant. */
interface SqliteServer {
  child: ChildProcess;
  /** Everything it printed (stdout and stderr). */
  output(): string;
  state(): Promise<SqliteServerState | undefined>;
  stop(): Promise<void>;
}

/** Starts `variant` on the cell's database; resolves once it listens (30 s at most). */
function startServer(variant: string, env: Record<string, string> = {}): Promise<SqliteServer> {
  const child = fork(path.join(here, 'sqlite-server.js'), [variant, String(PORT)], {
    env: { ...process.env, ...env, BENCH_SQLITE_FILE: cellFile, NO_COLOR: '1' },
    execArgv: ['--no-warnings'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    cwd: benchDir,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  const next = (type: string, ms: number) =>
    Promise.race([
      new Promise<any>((resolve) => {
        const listener = (message: { type: string }) => {
          if (message.type !== type) return;
          child.off('message', listener);
          resolve(message);
        };
        child.on('message', listener);
      }),
      exited.then(() => undefined),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref()),
    ]);
  const server: SqliteServer = {
    child,
    output: () => output,
    state: () => {
      if (exitCode !== undefined) return Promise.resolve(undefined);
      const answer = next('state', 5000);
      child.send({ cmd: 'state' } satisfies SqliteServerCommand);
      return answer as Promise<SqliteServerState | undefined>;
    },
    stop: async () => {
      if (exitCode === undefined) child.send({ cmd: 'stop' } satisfies SqliteServerCommand);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  return next('ready', 30_000).then((ready) => {
    if (ready) return server;
    child.kill('SIGKILL');
    throw new Error(`${variant} did not start:\n${output.slice(-3000)}`);
  });
}

/** What the client asked of each written row and what it was answered. */
class Ledger {
  private seq = 0;
  /** Row name → whether the request asked to fail, and the status answered (none yet). */
  readonly rows = new Map<string, { fail: boolean; status?: number }>();
  /** Statuses of /read (no row). */
  readonly reads = { ok: 0, failed: 0 };

  constructor(
    readonly endpoint: EndpointName,
    private readonly prefix: string,
  ) {}

  /** A new row name, and whether its request asks to fail. */
  ask(): { name: string; fail: boolean } {
    this.seq += 1;
    const fail = this.endpoint === 'mixed' && this.seq % FAIL_EVERY === 0;
    const name = `${this.prefix}-${this.seq}${fail ? '-f' : ''}`;
    this.rows.set(name, { fail });
    return { name, fail };
  }

  answer(name: string | undefined, status: number): void {
    if (this.endpoint === 'read') {
      if (status < 300) this.reads.ok += 1;
      else this.reads.failed += 1;
      return;
    }
    const row = name === undefined ? undefined : this.rows.get(name);
    if (row) row.status = status;
  }
}

/** Loads the server for `seconds` at `connections`, recording every answer in `ledger`. */
function load(ledger: Ledger, connections: number, seconds: number) {
  const endpoint = ledger.endpoint;
  return autocannon({
    url: `http://127.0.0.1:${PORT}`,
    connections,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: endpoint === 'read' ? 'GET' : 'POST',
        path: `/${endpoint}`,
        setupRequest: (request: any, context: any) => {
          if (endpoint === 'read') return request;
          const { name, fail } = ledger.ask();
          context.name = name;
          return { ...request, path: `/${endpoint}?n=${name}${fail ? '&fail=1' : ''}` };
        },
        onResponse: (status: number, _body: string, context: any) => {
          ledger.answer(context.name as string | undefined, status);
        },
      },
    ],
  } as autocannon.Options);
}

/** One cell: a variant, an endpoint, a concurrency. */
interface Cell {
  variant: string;
  endpoint: EndpointName;
  connections: number;
  rps: number;
  p99: number;
  /** Server CPU time per measured request, microseconds (less sensitive to a busy machine than req/s). */
  cpuPerRequest: number | undefined;
  /** Answers recorded (warm-up included). */
  answered: number;
  /** 2xx expected, something else answered (or a socket error, a timeout). */
  errors: number;
  /** A failure expected (/mixed with fail=1), 2xx answered. */
  wrongOk: number;
  /** 2xx answered, the row is not in the database. */
  lost: number;
  /** Failure answered (or intended), the row is in the database; or a row nobody asked for. */
  extra: number;
  /** Names given to a request with no answer recorded (built but unsent, or in flight at the stop); not judged. */
  unanswered: number;
  /** Of those, rows in the database (requests in flight at the stop that committed). */
  unansweredPresent: number;
  /** A transaction still open on the one connection after the load. */
  openTransaction: boolean | undefined;
  /** The server died during the cell. */
  crashed: boolean;
  /** Exceptions the server logged, by message (the intended failure excluded). */
  messages: Map<string, number>;
}

/** Exceptions Nest logged (`ERROR [ExceptionsHandler] <message>`), names of rows made generic. */
function loggedErrors(output: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const match of output.matchAll(/ERROR \[ExceptionsHandler\] (.*)/g)) {
    const message = match[1].replace(/[a-z]+-\d+-c\d+-\d+(-f)?/g, '<row>').trim();
    if (message.includes('intended failure after writing')) continue;
    counts.set(message, (counts.get(message) ?? 0) + 1);
  }
  return counts;
}

async function runCell(
  variant: string,
  endpoint: EndpointName,
  connections: number,
  index: number,
): Promise<Cell> {
  freshDatabase();
  const server = await startServer(variant);
  const ledger = new Ledger(endpoint, `${endpoint}-${index}-c${connections}`);
  let crashed = false;
  server.child.on('exit', (code) => (crashed = code !== 0 && code !== null));
  const warm = await load(ledger, connections, WARMUP);
  const before = await server.state();
  const measured = await load(ledger, connections, DURATION);
  const after = await server.state();
  // Let requests still in the server finish before judging.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const state = await server.state();
  await server.stop();
  const present = new Map<string, number>();
  for (const name of writtenRows()) present.set(name, (present.get(name) ?? 0) + 1);
  let errors = 0;
  let wrongOk = 0;
  let lost = 0;
  let extra = 0;
  let unanswered = 0;
  let unansweredPresent = 0;
  let answered = 0;
  if (endpoint === 'read') {
    answered = ledger.reads.ok + ledger.reads.failed;
    errors = ledger.reads.failed;
  }
  for (const [name, row] of ledger.rows) {
    const copies = present.get(name) ?? 0;
    present.delete(name);
    if (row.status === undefined) {
      unanswered += 1;
      if (copies > 0) unansweredPresent += 1;
      continue;
    }
    answered += 1;
    const ok = row.status >= 200 && row.status < 300;
    if (!row.fail && !ok) errors += 1;
    if (row.fail && ok) wrongOk += 1;
    if (ok && !row.fail && copies === 0) lost += 1;
    extra += ok && !row.fail ? Math.max(0, copies - 1) : copies;
  }
  // Rows nobody asked for.
  for (const copies of present.values()) extra += copies;
  // Socket errors and timeouts have no answer: count them as errors too.
  errors += warm.errors + warm.timeouts + measured.errors + measured.timeouts;
  return {
    variant,
    endpoint,
    connections,
    rps: measured.requests.average,
    p99: measured.latency.p99,
    cpuPerRequest:
      before && after && measured.requests.total > 0
        ? (after.cpuMicros - before.cpuMicros) / measured.requests.total
        : undefined,
    answered,
    errors,
    wrongOk,
    lost,
    extra,
    unanswered,
    unansweredPresent,
    openTransaction: state?.inTransaction,
    crashed,
    messages: loggedErrors(server.output()),
  };
}

function percent(part: number, whole: number): string {
  if (whole === 0) return '–';
  const value = (100 * part) / whole;
  return value === 0 ? '0' : value < 0.1 ? '<0.1%' : `${value.toFixed(1)}%`;
}

function report(cells: Cell[], sqliteVersion: string, started: Date, seconds: number): string {
  const cpus = os.cpus();
  const packageVersion = (name: string) =>
    (
      JSON.parse(
        readFileSync(path.join(benchDir, 'node_modules', name, 'package.json'), 'utf8'),
      ) as { version: string }
    ).version;
  const rootVersion = (name: string) =>
    (
      JSON.parse(
        readFileSync(path.join(benchDir, '..', 'node_modules', name, 'package.json'), 'utf8'),
      ) as { version: string }
    ).version;
  const lines = [
    `# SQLite bench (better-sqlite3), ${started.toISOString().slice(0, 10)}`,
    '',
    `Machine: ${cpus.length} × ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
      `${os.type()} ${os.release()}. Node ${process.version} (servers and autocannon on the same cores). ` +
      `better-sqlite3 ${packageVersion('better-sqlite3')}, SQLite ${sqliteVersion}, TypeORM ${rootVersion('typeorm')}, ` +
      `@nestjs-cls/transactional ${packageVersion('@nestjs-cls/transactional')} ` +
      `(adapter-typeorm ${packageVersion('@nestjs-cls/transactional-adapter-typeorm')}), ` +
      `typeorm-transactional ${packageVersion('typeorm-transactional')}, autocannon ${packageVersion('autocannon')}.`,
    '',
    `Each cell: a fresh server process on a fresh copy of a seeded file database (${SEED_ROWS} rows, ` +
      `WAL, synchronous = NORMAL), ${WARMUP} s warm-up then ${DURATION} s measured at the given ` +
      `concurrency (autocannon connections, no pipelining), one round; whole run ${seconds.toFixed(0)} s. ` +
      `/write: one INSERT and one SELECT in the variant's transaction. /mixed: the same with one turn of ` +
      `the event loop (setImmediate, standing for any other I/O) between them, and every ${FAIL_EVERY}th ` +
      `request asks its handler to throw after them. ` +
      `Correctness is judged over warm-up and measured requests after the server stopped, by reading ` +
      `the file.`,
    '',
    '| endpoint | c | variant | req/s | p99 ms | server CPU µs/req | answered | error rate | failure answered 2xx | lost | extra | unanswered (row present) | tx open after | crashed |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const cell of cells) {
    lines.push(
      `| /${cell.endpoint} | ${cell.connections} | ${cell.variant} | ${cell.rps.toFixed(0)} | ` +
        `${cell.p99} | ${cell.cpuPerRequest?.toFixed(0) ?? '?'} | ${cell.answered} | ${percent(cell.errors, cell.answered)} (${cell.errors}) | ` +
        `${cell.wrongOk} | ${cell.lost} | ${cell.extra} | ${cell.unanswered} (${cell.unansweredPresent}) | ` +
        `${cell.openTransaction === undefined ? '?' : cell.openTransaction ? 'yes' : 'no'} | ` +
        `${cell.crashed ? 'yes' : 'no'} |`,
    );
  }
  lines.push('', '## Exceptions the servers logged (intended failures excluded)', '');
  for (const variant of VARIANTS) {
    const totals = new Map<string, number>();
    for (const cell of cells.filter((c) => c.variant === variant))
      for (const [message, n] of cell.messages) totals.set(message, (totals.get(message) ?? 0) + n);
    lines.push(`- **${variant}**: ${totals.size === 0 ? 'none' : ''}`);
    for (const [message, n] of [...totals].sort((a, b) => b[1] - a[1]))
      lines.push(`  - ${n} × \`${message}\``);
  }
  return lines.join('\n') + '\n';
}

/**
 * `--trace`: per variant, TRACE_REQUESTS /mixed requests at once (every FAIL_EVERY-th asks to fail), every statement
 * the server sent (TypeORM's query log), the answers and the rows left. Prints, writes nothing.
 */
async function trace(): Promise<void> {
  createTemplate();
  for (const variant of VARIANTS) {
    freshDatabase();
    const server = await startServer(variant, { BENCH_SQLITE_LOG: '1' });
    const post = (query: string) =>
      fetch(`http://127.0.0.1:${PORT}/mixed?${query}`, { method: 'POST' }).then((r) => r.status);
    // TRACE_REQUESTS connections opened first, so that the POSTs reach the server in the same turn.
    const read = () => fetch(`http://127.0.0.1:${PORT}/read`).then((r) => r.text());
    await Promise.all(Array.from({ length: TRACE_REQUESTS }, read));
    const names = Array.from({ length: TRACE_REQUESTS }, (_, i) =>
      i % FAIL_EVERY === 0 ? `trace-${i}-f` : `trace-${i}`,
    );
    const statuses = await Promise.all(
      names.map((name) => post(`n=${name}${name.endsWith('-f') ? '&fail=1' : ''}`)),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await server.stop();
    const log = server
      .output()
      .split('\n')
      .filter(
        (line) =>
          /^query|QueryFailedError|ERROR/.test(line) && !line.includes('SELECT "BenchItem".'),
      )
      .map((line) => `    ${line.slice(0, 160)}`);
    console.log(
      `${variant}: ${names.map((name, i) => `${name} ${statuses[i]}`).join(', ')}; ` +
        `rows after: [${writtenRows().join(', ')}]\n${log.join('\n')}\n`,
    );
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--trace')) return trace();
  const started = new Date();
  const sqliteVersion = createTemplate();
  const cells: Cell[] = [];
  let index = 0;
  for (const endpoint of ENDPOINTS)
    for (const connections of CONCURRENCIES)
      for (const variant of VARIANTS) {
        index += 1;
        const cell = await runCell(variant, endpoint, connections, index);
        cells.push(cell);
        console.log(
          `/${endpoint} c=${connections} ${variant}: ${cell.rps.toFixed(0)} req/s, p99 ${cell.p99} ms, ` +
            `${cell.cpuPerRequest?.toFixed(0)} µs CPU/req, ` +
            `errors ${cell.errors}/${cell.answered}, lost ${cell.lost}, extra ${cell.extra}, ` +
            `unanswered ${cell.unanswered}, tx open ${cell.openTransaction}${cell.crashed ? ', CRASHED' : ''}`,
        );
      }
  const seconds = (Date.now() - started.getTime()) / 1000;
  const markdown = report(cells, sqliteVersion, started, seconds);
  const file = path.join(
    benchDir,
    'results',
    `${started.toISOString().slice(0, 10)}-${process.env.BENCH_LABEL ?? 'sqlite'}.md`,
  );
  writeFileSync(file, markdown);
  console.log(`\n${markdown}\nwritten to ${path.relative(process.cwd(), file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
