/**
 * The benchmark driver (see ../README.md). Starts each variant's server in a process of its own,
 * verifies it, then loads it with autocannon from this process in alternating rounds and writes
 * `bench/results/<date>.md`. `--smoke` only checks that every variant starts and answers.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { databaseVersion, resetTable, withClient } from './database.js';
import { type NodeBinary, nodeBinaries } from './node-binaries.js';
import { benchDir, type Server, startServer as start, variantSource } from './server-process.js';
import { perCallTable } from './derived.js';
import {
  ALL_ENDPOINTS,
  DEPTH,
  type Endpoint,
  FANOUT,
  POOL_SIZE,
  SEED_ROWS,
  SLEEP_SECONDS,
  TABLE,
} from './shared.js';

const rootDir = path.resolve(benchDir, '..');
/** The commit `dist/` was built from, read when the run starts (commits made meanwhile do not count). */
const built = `${gitCommit()}${gitDirty()}`;
const smoke = process.argv.includes('--smoke');
const quick = process.env.BENCH_QUICK === '1';
const CONNECTIONS = 50;
const DURATION = Number(process.env.BENCH_DURATION ?? (quick ? 2 : 4));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 3));
const WARMUP = quick ? 1 : 1;
const FIRST_WARMUP = quick ? 1 : 2;
const PORT = Number(process.env.BENCH_PORT ?? 3917);
const OURS = 'nestjs-typeorm-context';
/** The same app on this library's other paths (bench/src/variants/ntc-app.ts). */
const REPOSITORIES = 'ntc-repositories';
const INJECT_SESSION = 'ntc-inject-session';
/** Plain TypeORM repositories joined to the unit by `plainTypeorm: 'join'` (same app). */
const PLAIN_JOIN = 'ntc-plain-join';
const LIBRARY_PATHS = [OURS, REPOSITORIES, INJECT_SESSION, PLAIN_JOIN];
/** This library built from another commit (`BENCH_PREVIOUS=<its dist/>`), measured next to OURS. */
const PREVIOUS = 'previous';
const previousDist = process.env.BENCH_PREVIOUS;
/** The other paths on the previous build: only when BENCH_VARIANTS names them. */
const PREVIOUS_PATHS = [`${PREVIOUS}-${REPOSITORIES}`, `${PREVIOUS}-${INJECT_SESSION}`];
/** The variant file a variant runs (`previous*` run a library variant on dist-previous/). */

const VARIANTS = [
  'baseline',
  'context-floor',
  OURS,
  REPOSITORIES,
  INJECT_SESSION,
  PLAIN_JOIN,
  'nestjs-cls',
  'typeorm-transactional',
  'request-scope',
  ...(previousDist ? [PREVIOUS] : []),
  ...(previousDist && process.env.BENCH_VARIANTS ? PREVIOUS_PATHS : []),
].filter(
  (name) => !process.env.BENCH_VARIANTS || process.env.BENCH_VARIANTS.split(',').includes(name),
);

const VARIANT_LABELS: Record<string, string> = {
  baseline: 'baseline (QueryRunner per handler)',
  'context-floor': 'context-floor (baseline + empty ALS.run)',
  [OURS]: '**nestjs-typeorm-context** (session())',
  [REPOSITORIES]: '**nestjs-typeorm-context** (forFeature + @InjectRepository)',
  [INJECT_SESSION]: '**nestjs-typeorm-context** (@InjectSession)',
  [PLAIN_JOIN]: "**nestjs-typeorm-context** (TypeOrmModule repositories, plainTypeorm: 'join')",
  'nestjs-cls': '@nestjs-cls/transactional (typeorm adapter)',
  'typeorm-transactional': 'typeorm-transactional',
  'request-scope': 'Scope.REQUEST QueryRunner',
  [PREVIOUS]: 'nestjs-typeorm-context, previous build',
  [PREVIOUS_PATHS[0]]: 'nestjs-typeorm-context (repositories), previous build',
  [PREVIOUS_PATHS[1]]: 'nestjs-typeorm-context (@InjectSession), previous build',
};

/** The endpoints measured (BENCH_ENDPOINTS picks some). */
const ENDPOINTS = ALL_ENDPOINTS.filter(
  (endpoint) =>
    !process.env.BENCH_ENDPOINTS || process.env.BENCH_ENDPOINTS.split(',').includes(endpoint.path),
);

// ---------------------------------------------------------------------------------- servers

function startServer(node: NodeBinary, variant: string, execArgv: string[] = []): Promise<Server> {
  // The previous build runs the very same variant code, importing the library from dist-previous/.
  return start({ ...variantSource(variant), port: PORT, node: node.path, execArgv });
}

async function call(
  endpoint: Endpoint,
  signal?: AbortSignal,
): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${PORT}/${endpoint.path}`, {
    method: endpoint.method,
    signal,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text for the message
  }
  return { status: response.status, body, ms: performance.now() - started };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

interface Verification {
  ok: boolean;
  problems: string[];
  parallelWallMs: number;
  parallelServerMs: number;
  noopCheckouts: number;
  /** /fanout under CONNECTIONS concurrent requests: wall ms, requests answered, distinct backends. */
  fanoutBurst?: { ms: number; ok: number; distinctPids: number; perRequestDistinct: number };
}

/** Seconds CONNECTIONS concurrent /fanout requests may take before the burst counts as stuck. */
const FANOUT_BURST_LIMIT_S = 20;

/**
 * /fanout under load: CONNECTIONS requests at once, each opening FANOUT independent sessions on a
 * pool of POOL_SIZE. Every request must complete (no deadlock, no acquire timeout).
 */
async function fanoutBurst(
  endpoint: Endpoint,
  problems: string[],
): Promise<Verification['fanoutBurst']> {
  const started = performance.now();
  const signal = AbortSignal.timeout(FANOUT_BURST_LIMIT_S * 1000);
  const answers = await Promise.allSettled(
    Array.from({ length: CONNECTIONS }, () => call(endpoint, signal)),
  );
  const ms = performance.now() - started;
  const pids = new Set<number>();
  let ok = 0;
  let perRequest = 0;
  for (const answer of answers) {
    if (answer.status !== 'fulfilled' || answer.value.status >= 300) continue;
    const got: number[] = answer.value.body?.pids ?? [];
    if (got.length !== FANOUT) continue;
    ok += 1;
    got.forEach((pid) => pids.add(pid));
    perRequest += new Set(got).size;
  }
  if (ok !== CONNECTIONS) {
    const failure = answers.find((a) => a.status === 'rejected' || a.value.status >= 300);
    const detail =
      failure?.status === 'rejected'
        ? String((failure.reason as Error)?.message ?? failure.reason)
        : JSON.stringify(failure?.value.body).slice(0, 300);
    problems.push(
      `/fanout: ${ok} of ${CONNECTIONS} concurrent requests completed with ${FANOUT} results in ${fmt(ms)} ms (pool ${POOL_SIZE}): ${detail}`,
    );
  }
  return { ms, ok, distinctPids: pids.size, perRequestDistinct: ok ? perRequest / ok : NaN };
}

/** Correctness before timing, so that a fast wrong variant cannot win. */
async function verify(server: Server): Promise<Verification> {
  const problems: string[] = [];
  const byPath = Object.fromEntries(ALL_ENDPOINTS.map((e) => [e.path, e]));
  for (const endpoint of ALL_ENDPOINTS) {
    const { status, body } = await call(endpoint);
    if (status >= 300)
      problems.push(
        `${endpoint.method} /${endpoint.path} answered ${status}: ${JSON.stringify(body)}`,
      );
  }
  await server.send({ cmd: 'reset' });
  for (let i = 0; i < 5; i++) await call(byPath.noop);
  const noopCheckouts = (await server.stats()).checkouts;
  if (noopCheckouts !== 0) problems.push(`/noop took ${noopCheckouts} connections in 5 requests`);

  const read = await call(byPath.read);
  if (!(read.body?.id >= 1 && read.body.id <= SEED_ROWS))
    problems.push(`/read returned ${JSON.stringify(read.body)}`);

  await withClient(async (client) => {
    const write = await call(byPath.write);
    const rows = await client.query(`SELECT name FROM ${TABLE} WHERE id = $1`, [write.body?.id]);
    if (rows.rows[0]?.name !== write.body?.name) {
      problems.push(
        `/write: row ${JSON.stringify(write.body)} not committed when the response arrived`,
      );
    }
    const chain = await call(byPath.chain);
    const chained = await client.query(`SELECT 1 FROM ${TABLE} WHERE id = $1`, [chain.body?.id]);
    if (chained.rowCount !== 1)
      problems.push(`/chain: row ${chain.body?.id} not committed when the response arrived`);
    if (!chain.body?.tx || chain.body.tx !== chain.body.xmin) {
      problems.push(
        `/chain: INSERT and SELECT ran in different transactions (${JSON.stringify(chain.body)})`,
      );
    }
  });

  const multi = (await call(byPath.multi)).body;
  const txs: string[] = multi?.tx ?? [];
  if (txs.length !== 3 || !txs[0] || new Set(txs).size !== 1) {
    problems.push(
      `/multi: the three queries ran in different transactions (${JSON.stringify(multi)})`,
    );
  }
  const deep = (await call(byPath.deep)).body;
  if (deep?.calls !== DEPTH || !deep.first || deep.first !== deep.last) {
    problems.push(
      `/deep: not ${DEPTH} calls in one transaction (first and last query's transaction differ: ${JSON.stringify(deep)})`,
    );
  }
  const fanout = (await call(byPath.fanout)).body;
  const fanoutPids: unknown[] = fanout?.pids ?? [];
  if (fanoutPids.length !== FANOUT || !fanoutPids.every((pid) => Number(pid) > 0))
    problems.push(`/fanout: not ${FANOUT} results (${JSON.stringify(fanout)})`);
  const burst = await fanoutBurst(byPath.fanout, problems);

  const walls: number[] = [];
  const serverWalls: number[] = [];
  for (let i = 0; i < 7; i++) {
    const { body, ms } = await call(byPath.parallel);
    walls.push(ms);
    serverWalls.push(Number(body?.ms));
    const pids: number[] = body?.pids ?? [];
    if (new Set(pids).size !== 3)
      problems.push(`/parallel ran on backends ${JSON.stringify(pids)}, not 3 distinct ones`);
  }
  const parallelWallMs = median(walls);
  const parallelServerMs = median(serverWalls);
  const sleepMs = SLEEP_SECONDS * 1000;
  if (!(parallelServerMs < sleepMs * 1.75)) {
    problems.push(
      `/parallel took ${parallelServerMs.toFixed(1)} ms, not near one sleep (${sleepMs} ms)`,
    );
  }
  const { held } = await server.stats();
  if (held !== 0) problems.push(`${held} connections still checked out after the requests`);
  return {
    ok: problems.length === 0,
    problems: [...new Set(problems)],
    parallelWallMs,
    parallelServerMs,
    noopCheckouts,
    fanoutBurst: burst,
  };
}

// ---------------------------------------------------------------------------------- load

interface Cell {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  cpuPerRequest: number;
  checkoutsPerRequest: number;
  peakHeld: number;
  /** Milliseconds of pooled connection held per request. */
  heldMsPerRequest: number;
}

async function load(
  endpoint: Endpoint,
  seconds: number,
  amount?: number,
): Promise<autocannon.Result> {
  return autocannon({
    url: `http://127.0.0.1:${PORT}/${endpoint.path}`,
    method: endpoint.method,
    connections: CONNECTIONS,
    ...(amount ? { amount } : { duration: seconds }),
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(server: Server, endpoint: Endpoint): Promise<Cell> {
  await pause(300); // let the warm-up's last requests finish before the counters start
  await server.send({ cmd: 'reset' });
  const result = await load(endpoint, DURATION);
  await pause(300); // requests still in flight when autocannon stopped finish and are counted
  const stats = await server.stats();
  const ok = result['2xx'];
  const served = Math.max(stats.requests, 1);
  return {
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: ok,
    errors: result.errors + result.timeouts + result.non2xx,
    cpuPerRequest: stats.cpuMicros / served,
    checkoutsPerRequest: stats.checkouts / served,
    peakHeld: stats.peakHeld,
    heldMsPerRequest: stats.heldMs / served,
  };
}

// ---------------------------------------------------------------------------------- suite

interface VariantResult {
  verification?: Verification;
  failure?: string;
  cells: Record<string, Cell[]>;
  maxRss: number;
}

interface NodeRun {
  node: NodeBinary;
  variants: Record<string, VariantResult>;
  memory?: { after10k: number; after100k: number; growth: number };
}

async function runNode(node: NodeBinary): Promise<NodeRun> {
  const run: NodeRun = { node, variants: {} };
  for (const variant of VARIANTS) {
    const entry: VariantResult = { cells: {}, maxRss: 0 };
    run.variants[variant] = entry;
    try {
      const server = await startServer(node, variant);
      try {
        entry.verification = await verify(server);
        if (!entry.verification.ok)
          entry.failure = `verification failed: ${entry.verification.problems.join('; ')}`;
      } finally {
        await server.stop();
      }
    } catch (error) {
      entry.failure = `could not start: ${String((error as Error).message ?? error)}`;
    }
    log(`${node.label} ${variant}: ${entry.failure ?? 'verified'}`);
  }
  const runnable = VARIANTS.filter((v) => !run.variants[v].failure);
  for (let round = 1; round <= ROUNDS; round++) {
    // Each round starts with another variant, so no variant always runs right after the same one.
    const shift = (round - 1) % runnable.length;
    for (const variant of [...runnable.slice(shift), ...runnable.slice(0, shift)]) {
      const entry = run.variants[variant];
      const server = await startServer(node, variant);
      for (const endpoint of ENDPOINTS) {
        await load(endpoint, round === 1 ? FIRST_WARMUP : WARMUP);
        const cell = await measure(server, endpoint);
        (entry.cells[endpoint.path] ??= []).push(cell);
        log(
          `${node.label} round ${round}/${ROUNDS} ${variant.padEnd(24)} /${endpoint.path.padEnd(8)} ` +
            `${cell.rps.toFixed(0).padStart(6)} req/s p50 ${cell.p50} p99 ${cell.p99} ` +
            `cpu ${cell.cpuPerRequest.toFixed(0)} µs/req conn ${cell.checkoutsPerRequest.toFixed(2)}/req` +
            (cell.errors ? ` ERRORS ${cell.errors}` : ''),
        );
      }
      entry.maxRss = Math.max(entry.maxRss, (await server.stats()).maxRss);
      await server.stop();
    }
  }
  return run;
}

/** RSS of our module's server after 10k and after 100k requests (/read). */
async function memoryCheck(node: NodeBinary): Promise<NodeRun['memory']> {
  const server = await startServer(node, OURS);
  try {
    const read = ALL_ENDPOINTS[1];
    await load(read, 0, quick ? 2_000 : 10_000);
    const after10k = (await server.stats()).rss;
    await load(read, 0, quick ? 18_000 : 90_000);
    const after100k = (await server.stats()).rss;
    return { after10k, after100k, growth: after100k / after10k - 1 };
  } finally {
    await server.stop();
  }
}

async function smokeTest(): Promise<void> {
  const node = nodeBinaries(benchDir).nodes[0];
  let failed = 0;
  for (const variant of VARIANTS) {
    const started = performance.now();
    try {
      const server = await startServer(node, variant);
      try {
        const answers: string[] = [];
        for (const endpoint of ENDPOINTS) {
          const { status } = await call(endpoint);
          answers.push(`/${endpoint.path} ${status}`);
          if (status >= 300) failed += 1;
        }
        const verification = await verify(server);
        if (!verification.ok) failed += 1;
        log(
          `smoke ${variant}: ${answers.join(', ')}; ` +
            (verification.ok
              ? `verified (/fanout: ${CONNECTIONS} at once in ${fmt(verification.fanoutBurst?.ms ?? NaN)} ms)`
              : `VERIFICATION FAILED: ${verification.problems.join('; ')}`) +
            ` (${(performance.now() - started).toFixed(0)} ms)`,
        );
      } finally {
        await server.stop();
      }
    } catch (error) {
      failed += 1;
      log(`smoke ${variant}: FAILED ${String((error as Error).message ?? error)}`);
    }
  }
  if (failed) {
    log(`smoke: ${failed} failures`);
    process.exitCode = 1;
  } else {
    log('smoke: every variant started, answered every endpoint and passed verification');
  }
}

// ---------------------------------------------------------------------------------- report

const fmt = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const ratio = (a: number, b: number) =>
  b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}x` : '–';
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function medianCell(cells: Cell[] | undefined): Cell | undefined {
  if (!cells?.length) return undefined;
  const pick = (key: keyof Cell) => median(cells.map((c) => c[key]));
  return {
    rps: pick('rps'),
    p50: pick('p50'),
    p99: pick('p99'),
    requests: pick('requests'),
    errors: cells.reduce((sum, c) => sum + c.errors, 0),
    cpuPerRequest: pick('cpuPerRequest'),
    checkoutsPerRequest: pick('checkoutsPerRequest'),
    peakHeld: Math.max(...cells.map((c) => c.peakHeld)),
    heldMsPerRequest: pick('heldMsPerRequest'),
  };
}

interface Target {
  name: string;
  met: boolean;
  detail: string;
}

function targets(run: NodeRun): Target[] {
  const cell = (variant: string, path: string) => medianCell(run.variants[variant]?.cells[path]);
  const out: Target[] = [];
  const floorPaths = ['noop', 'read', 'write', 'chain'];
  const rpsRatios = floorPaths.map(
    (p) => [p, (cell(OURS, p)?.rps ?? NaN) / (cell('context-floor', p)?.rps ?? NaN)] as const,
  );
  out.push({
    name: '>= 0.97x context-floor req/s on /noop /read /write /chain',
    met: rpsRatios.every(([, r]) => r >= 0.97),
    detail: rpsRatios.map(([p, r]) => `/${p} ${fmt(r, 3)}x`).join(', '),
  });
  const cpuRatios = floorPaths.map(
    (p) =>
      [
        p,
        (cell(OURS, p)?.cpuPerRequest ?? NaN) / (cell('context-floor', p)?.cpuPerRequest ?? NaN),
      ] as const,
  );
  out.push({
    name: 'CPU per request within 3% of context-floor on /noop /read /write /chain',
    met: cpuRatios.every(([, r]) => r <= 1.03),
    detail: cpuRatios.map(([p, r]) => `/${p} ${fmt(r, 3)}x`).join(', '),
  });
  const budgetPaths = ['read', 'write', 'chain', 'multi'];
  for (const variant of LIBRARY_PATHS.filter((v) => run.variants[v] && !run.variants[v].failure)) {
    const over = budgetPaths.map(
      (p) =>
        [
          p,
          (cell(variant, p)?.cpuPerRequest ?? NaN) -
            (cell('context-floor', p)?.cpuPerRequest ?? NaN),
        ] as const,
    );
    out.push({
      name: `${variant}: CPU per request within +30 µs of context-floor on /read /write /chain /multi`,
      met: over.every(([, d]) => d <= 30),
      detail: over.map(([p, d]) => `/${p} ${d >= 0 ? '+' : ''}${fmt(d)} µs`).join(', '),
    });
  }
  const alternatives = ['nestjs-cls', 'typeorm-transactional', 'request-scope'];
  const behind: string[] = [];
  for (const alt of alternatives) {
    if (!run.variants[alt] || run.variants[alt].failure) continue;
    for (const { path: p } of ENDPOINTS) {
      const ours = cell(OURS, p)?.rps ?? NaN;
      const theirs = cell(alt, p)?.rps ?? NaN;
      if (!(ours > theirs)) behind.push(`/${p} vs ${alt} (${fmt(ours)} vs ${fmt(theirs)})`);
    }
  }
  out.push({
    name: 'ahead of every alternative on every endpoint (req/s)',
    met: behind.length === 0,
    detail: behind.length ? `behind or tied: ${behind.join('; ')}` : 'ahead everywhere',
  });
  const noop = cell(OURS, 'noop');
  out.push({
    name: '/noop takes zero connections',
    met: noop?.checkoutsPerRequest === 0 && run.variants[OURS]?.verification?.noopCheckouts === 0,
    detail: `checkouts per request under load: ${fmt(noop?.checkoutsPerRequest ?? NaN, 3)}, peak held ${noop?.peakHeld}`,
  });
  const wall = run.variants[OURS]?.verification?.parallelServerMs ?? NaN;
  out.push({
    name: '/parallel wall time ≈ one sleep',
    met: wall < SLEEP_SECONDS * 1000 * 1.75,
    detail: `${fmt(wall, 1)} ms in the handler (${fmt(run.variants[OURS]?.verification?.parallelWallMs ?? NaN, 1)} ms at the client) for three ${SLEEP_SECONDS * 1000} ms sleeps`,
  });
  if (run.memory) {
    out.push({
      name: 'RSS after 100k requests within 5% of RSS after 10k',
      met: Math.abs(run.memory.growth) <= 0.05,
      detail: `${mb(run.memory.after10k)} → ${mb(run.memory.after100k)} (${(run.memory.growth * 100).toFixed(1)}%)`,
    });
  }
  return out;
}

function nodeSection(run: NodeRun): string {
  const lines: string[] = [];
  const variants = VARIANTS;
  const cell = (variant: string, p: string) => medianCell(run.variants[variant]?.cells[p]);
  const label = (v: string) => VARIANT_LABELS[v] ?? v;
  lines.push(`## ${run.node.label} (${run.node.version})`, '');

  lines.push('### Requests/s (median of rounds) — ratio to context-floor / to baseline', '');
  lines.push(`| variant | ${ENDPOINTS.map((e) => `${e.method} /${e.path}`).join(' | ')} |`);
  lines.push(`|---|${ENDPOINTS.map(() => '---:').join('|')}|`);
  for (const v of variants) {
    if (run.variants[v]?.failure) {
      lines.push(`| ${label(v)} | ${ENDPOINTS.map(() => 'did not run').join(' | ')} |`);
      continue;
    }
    const cols = ENDPOINTS.map(({ path: p }) => {
      const c = cell(v, p);
      if (!c) return '–';
      return `${fmt(c.rps)} (${ratio(c.rps, cell('context-floor', p)?.rps ?? NaN)} / ${ratio(c.rps, cell('baseline', p)?.rps ?? NaN)})`;
    });
    lines.push(`| ${label(v)} | ${cols.join(' | ')} |`);
  }
  lines.push('');

  lines.push('### Latency p50 / p99 (ms, median of rounds)', '');
  lines.push(`| variant | ${ENDPOINTS.map((e) => `/${e.path}`).join(' | ')} |`);
  lines.push(`|---|${ENDPOINTS.map(() => '---:').join('|')}|`);
  for (const v of variants) {
    if (run.variants[v]?.failure) continue;
    lines.push(
      `| ${label(v)} | ${ENDPOINTS.map(({ path: p }) => {
        const c = cell(v, p);
        return c ? `${fmt(c.p50)} / ${fmt(c.p99)}` : '–';
      }).join(' | ')} |`,
    );
  }
  lines.push('');

  lines.push('### Server CPU per request (µs, user+system, median) — ratio to context-floor', '');
  lines.push(`| variant | ${ENDPOINTS.map((e) => `/${e.path}`).join(' | ')} |`);
  lines.push(`|---|${ENDPOINTS.map(() => '---:').join('|')}|`);
  for (const v of variants) {
    if (run.variants[v]?.failure) continue;
    lines.push(
      `| ${label(v)} | ${ENDPOINTS.map(({ path: p }) => {
        const c = cell(v, p);
        return c
          ? `${fmt(c.cpuPerRequest)} (${ratio(c.cpuPerRequest, cell('context-floor', p)?.cpuPerRequest ?? NaN)})`
          : '–';
      }).join(' | ')} |`,
    );
  }
  lines.push('');

  lines.push(
    '### DB connections: pool checkouts per request / ms held per request / most held at once (pool of ' +
      POOL_SIZE +
      ')',
    '',
  );
  lines.push(`| variant | ${ENDPOINTS.map((e) => `/${e.path}`).join(' | ')} |`);
  lines.push(`|---|${ENDPOINTS.map(() => '---:').join('|')}|`);
  for (const v of variants) {
    if (run.variants[v]?.failure) continue;
    lines.push(
      `| ${label(v)} | ${ENDPOINTS.map(({ path: p }) => {
        const c = cell(v, p);
        return c
          ? `${fmt(c.checkoutsPerRequest, 2)} / ${fmt(c.heldMsPerRequest, 1)} / ${c.peakHeld}`
          : '–';
      }).join(' | ')} |`,
    );
  }
  lines.push('');

  lines.push('### Server process and correctness checks', '');
  lines.push(
    `| variant | peak RSS | verified | /parallel wall (handler / client, ms) | /fanout: ${CONNECTIONS} at once (ms / distinct backends per request / in all) | errors under load |`,
  );
  lines.push('|---|---:|---|---:|---:|---:|');
  for (const v of variants) {
    const entry = run.variants[v];
    const errors = Object.values(entry.cells)
      .flat()
      .reduce((sum, c) => sum + c.errors, 0);
    const verification = entry.verification;
    lines.push(
      `| ${label(v)} | ${entry.maxRss ? mb(entry.maxRss) : '–'} | ${entry.failure ? `**no**: ${entry.failure.replace(/\|/g, '\\|').replace(/\n/g, ' ').slice(0, 400)}` : 'yes'} | ` +
        `${verification ? `${fmt(verification.parallelServerMs, 1)} / ${fmt(verification.parallelWallMs, 1)}` : '–'} | ` +
        `${verification?.fanoutBurst ? `${fmt(verification.fanoutBurst.ms)} / ${fmt(verification.fanoutBurst.perRequestDistinct, 1)} / ${verification.fanoutBurst.distinctPids}` : '–'} | ${errors} |`,
    );
  }
  lines.push('');

  lines.push(
    ...perCallTable(
      variants.filter((v) => !run.variants[v]?.failure),
      (v, p) => cell(v, p)?.cpuPerRequest,
      label,
    ),
  );

  lines.push('### Targets (nestjs-typeorm-context)', '');
  lines.push('| target | met | measured |', '|---|---|---|');
  for (const t of targets(run))
    lines.push(`| ${t.name} | ${t.met ? 'yes' : '**no**'} | ${t.detail} |`);
  lines.push('');
  return lines.join('\n');
}

function versionOf(pkg: string): string {
  for (const base of [path.join(benchDir, 'node_modules'), path.join(rootDir, 'node_modules')]) {
    const file = path.join(base, pkg, 'package.json');
    if (existsSync(file))
      return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return 'not installed';
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: rootDir })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

function gitDirty(): string {
  try {
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: rootDir })
      .toString()
      .trim();
    return dirty ? ', with uncommitted changes in src/' : '';
  } catch {
    return '';
  }
}

function machine(): string[] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return [
    `- nproc: ${os.availableParallelism()}`,
    `- CPU: ${model}`,
    `- memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- OS: ${os.type()} ${os.release()}`,
  ];
}

function report(
  runs: NodeRun[],
  missing: string[],
  postgres: string,
  started: Date,
  elapsed: number,
): string {
  const root = JSON.parse(readFileSync(path.join(rootDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const lines = [
    `# Benchmark results ${started.toISOString().slice(0, 10)}`,
    '',
    'Command (from the repository root):',
    '',
    '```sh',
    `${quick ? 'BENCH_QUICK=1 ' : ''}npm run bench`,
    '```',
    '',
    `Run started ${started.toISOString()}, took ${(elapsed / 60_000).toFixed(1)} min.` +
      (quick ? ' **Quick mode: numbers are indicative only.**' : ''),
    '',
    '## Machine',
    '',
    ...machine(),
    `- PostgreSQL ${postgres} on 127.0.0.1 (same machine)`,
    '',
    '## Versions',
    '',
    `- nestjs-typeorm-context ${root.version} (\`dist/\` built from commit ${built})`,
    ...runs.map((r) => `- ${r.node.label}: ${r.node.version} (${r.node.path})`),
    ...[
      '@nestjs/core',
      '@nestjs/platform-express',
      '@nestjs/typeorm',
      'typeorm',
      'pg',
      'nestjs-cls',
      '@nestjs-cls/transactional',
      '@nestjs-cls/transactional-adapter-typeorm',
      'typeorm-transactional',
      'autocannon',
    ].map((p) => `- ${p} ${versionOf(p)}`),
    '',
    '## Method',
    '',
    `- Every variant is the same Nest app (Express, entity \`${TABLE}\`, pool size ${POOL_SIZE}) in a server process of its own; autocannon runs in the driver process with ${CONNECTIONS} connections.`,
    `- Each cell: ${FIRST_WARMUP} s warm-up in round 1 (${WARMUP} s later), then ${DURATION} s measured; ${ROUNDS} rounds, variants alternating within each round, each round starting with the next variant (A B C, B C A, C A B …), a fresh server per variant per round. Tables show medians over rounds.`,
    '- Server CPU is `process.cpuUsage()` of the server process over the measured window divided by the requests the server received in it; connections are pg pool `acquire` events per request and the most checked out at once.',
    `- Before timing, each variant is verified: /write's row is committed when the response arrives, /chain's INSERT and last SELECT share one transaction (row xmin = txid_current()), /parallel runs on 3 distinct backends in about one ${SLEEP_SECONDS * 1000} ms sleep, /noop takes no connection, /multi's three queries and /deep's ${DEPTH} queries each share one transaction (same backend and now()), /fanout returns ${FANOUT} results and ${CONNECTIONS} concurrent /fanout requests all complete on the pool of ${POOL_SIZE}.`,
    '- Ratios: `(x / context-floor / x baseline)` of requests per second. The machine has 2 cores shared by server, load generator and PostgreSQL, so absolute numbers are low and differences under ~3% are within noise.',
    '',
  ];
  if (missing.length) lines.push('## Not run', '', ...missing.map((m) => `- ${m}`), '');
  for (const run of runs) lines.push(nodeSection(run));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------- main

const log = (message: string) =>
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

async function main(): Promise<void> {
  if (previousDist) {
    const target = path.join(benchDir, '.tmp', 'dist-previous');
    rmSync(target, { recursive: true, force: true });
    cpSync(path.resolve(rootDir, previousDist), target, { recursive: true });
  }
  await resetTable();
  if (smoke) return smokeTest();
  const started = new Date();
  const { nodes, missing } = nodeBinaries(benchDir);
  const postgres = await databaseVersion();
  const runs: NodeRun[] = [];
  for (const node of nodes) {
    const run = await runNode(node);
    if (
      VARIANTS.includes(OURS) &&
      !run.variants[OURS].failure &&
      (node === nodes[0] || process.env.BENCH_MEMORY_ALL === '1')
    ) {
      run.memory = await memoryCheck(node);
      log(
        `${node.label} memory: ${mb(run.memory!.after10k)} after 10k, ${mb(run.memory!.after100k)} after 100k`,
      );
    }
    runs.push(run);
    await resetTable();
  }
  const markdown = report(runs, missing, postgres, started, Date.now() - started.getTime());
  const dir = path.join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const suffix = `${quick ? '-quick' : ''}${process.env.BENCH_LABEL ? `-${process.env.BENCH_LABEL}` : ''}`;
  const file = path.join(dir, `${started.toISOString().slice(0, 10)}${suffix}.md`);
  writeFileSync(file, markdown + '\n');
  console.log(markdown);
  log(`results written to ${path.relative(rootDir, file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
