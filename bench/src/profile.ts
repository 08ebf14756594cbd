/**
 * Where a request's CPU goes, by package: each variant's server under load with V8's sampling
 * profiler on its main thread (started after a warm-up, over IPC), self time summed per package
 * (`node_modules/<name>`, this library's `dist/`, the bench app, Node's own modules by area, the
 * garbage collector and V8's builtins) and divided by the requests served. `npm run bench:profile`;
 * BENCH_VARIANTS, BENCH_ENDPOINTS (default noop,read,deep,fanout), BENCH_NODES, BENCH_REQUESTS
 * (default 4000), BENCH_CONNECTIONS (default 10; 50 with BENCH_POOL=10 for a full pool) and
 * BENCH_PROFILE_INTERVAL (µs, default 100) choose what it runs.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { resetTable } from './database.js';
import { nodeBinaries } from './node-binaries.js';
import { benchDir, startServer } from './server-process.js';
import { ALL_ENDPOINTS, type Endpoint, MAIN_VARIANTS } from './shared.js';

const PORT = Number(process.env.BENCH_PORT ?? 3917);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const INTERVAL = Number(process.env.BENCH_PROFILE_INTERVAL ?? 100);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const pick = (env: string | undefined, all: string[]) =>
  env ? env.split(',').filter((name) => all.includes(name)) : all;
const VARIANTS = pick(process.env.BENCH_VARIANTS, MAIN_VARIANTS);
const ENDPOINTS = pick(process.env.BENCH_ENDPOINTS ?? 'noop,read,deep,fanout', [
  ...ALL_ENDPOINTS.map((endpoint) => endpoint.path),
]).map((name) => ALL_ENDPOINTS.find((endpoint) => endpoint.path === name)!);

/** A node of a `.cpuprofile`. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Node's own modules, by what they do for a request. */
const NODE_AREAS: Array<[RegExp, string]> = [
  [/async_hooks|async_local_storage|async_context_frame/, 'node: async_hooks / AsyncLocalStorage'],
  [/process\/(task_queues|promises)/, 'node: promise jobs and ticks'],
  [/_http|http|net|stream|socket|dns/, 'node: http, net and streams'],
  [/events/, 'node: events'],
  [/timers/, 'node: timers'],
];

/** The group a frame's self time counts for. */
export function groupOf({ functionName, url }: ProfileNode['callFrame']): string {
  if (!url) {
    if (functionName === '(garbage collector)') return 'V8: garbage collector';
    if (functionName === '(idle)' || functionName === '(root)') return '(idle)';
    return 'V8: builtins and runtime';
  }
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const [scope, name] = url.slice(modules + '/node_modules/'.length).split('/');
    return scope.startsWith('@') ? `${scope}/${name}` : scope;
  }
  if (/\/\.tmp\/dist(-previous)?\//.test(url)) return LIBRARY;
  if (url.includes('/.tmp/js/')) return 'bench app (variant code)';
  if (url.startsWith('node:')) {
    return NODE_AREAS.find(([pattern]) => pattern.test(url))?.[1] ?? 'node: other';
  }
  return `other: ${url}`;
}

const LIBRARY = 'nestjs-typeorm-context (dist)';

/** Self time in µs over the whole profile: per group, and per function of this library. */
export function selfTimes(profile: CpuProfile): {
  groups: Map<string, number>;
  library: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const groups = new Map<string, number>();
  const library = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, micros: number) =>
    map.set(key, (map.get(key) ?? 0) + micros);
  // timeDeltas[i] is the time before sample i; attribute it to the sample it ends on.
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!;
    const group = groupOf(frame);
    const micros = profile.timeDeltas[i] ?? 0;
    add(groups, group, micros);
    if (group === LIBRARY) {
      const file = frame.url.slice(frame.url.lastIndexOf('/') + 1);
      add(
        library,
        `${frame.functionName || '(anonymous)'} (${file}:${frame.lineNumber + 1})`,
        micros,
      );
    }
  });
  return { groups, library };
}

async function load(endpoint: Endpoint, amount: number): Promise<void> {
  const result = await autocannon({
    url: `http://127.0.0.1:${PORT}/${endpoint.path}`,
    method: endpoint.method as 'GET',
    connections: CONNECTIONS,
    amount,
  });
  const failed = result.errors + result.non2xx;
  if (failed > 0) throw new Error(`/${endpoint.path}: ${failed} failed requests`);
}

interface Cell {
  /** µs of main-thread self time per request, by group. */
  groups: Map<string, number>;
  /** µs of main-thread self time per request, by function of this library. */
  library: Map<string, number>;
  /** Process CPU (all threads) per request, µs. */
  cpu: number;
}

async function profileVariant(
  node: string,
  variant: string,
  endpoint: Endpoint,
  dir: string,
): Promise<Cell> {
  const server = await startServer({ variant, port: PORT, node });
  try {
    await load(endpoint, REQUESTS / 2); // warm-up: JIT, pools, lazy init
    await server.send({ cmd: 'reset' });
    await server.send({ cmd: 'profile-start', interval: INTERVAL });
    await load(endpoint, REQUESTS);
    const file = path.join(dir, `${variant}-${endpoint.path}.cpuprofile`);
    const stopped = await server.send({ cmd: 'profile-stop', file });
    if (stopped.error) throw new Error(`profiler: ${stopped.error}`);
    const stats = await server.stats();
    const times = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
    const perRequest = (map: Map<string, number>) =>
      new Map(
        [...map]
          .filter(([key]) => key !== '(idle)')
          .map(([key, micros]) => [key, micros / stats.requests]),
      );
    return {
      groups: perRequest(times.groups),
      library: perRequest(times.library),
      cpu: stats.cpuMicros / stats.requests,
    };
  } finally {
    await server.stop();
  }
}

const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);

/** One endpoint's table: a row per group (largest first), a column per variant. */
function table(endpoint: Endpoint, cells: Map<string, Cell>): string {
  const variants = [...cells.keys()];
  const all = new Set(variants.flatMap((variant) => [...cells.get(variant)!.groups.keys()]));
  const rows = [...all]
    .map((group) => ({
      group,
      values: variants.map((variant) => cells.get(variant)!.groups.get(group) ?? 0),
    }))
    .sort((a, b) => Math.max(...b.values) - Math.max(...a.values));
  const shown = rows.filter((row) => Math.max(...row.values) >= 1);
  const rest = variants.map((_, i) =>
    sum(rows.filter((r) => !shown.includes(r)).map((r) => r.values[i])),
  );
  const line = (label: string, values: number[]) =>
    `| ${label} | ${values.map((value) => value.toFixed(1)).join(' | ')} |`;
  return [
    `### ${endpoint.method} /${endpoint.path}: µs per request`,
    '',
    `| group | ${variants.join(' | ')} |`,
    `|---|${variants.map(() => '---:').join('|')}|`,
    ...shown.map((row) => line(row.group, row.values)),
    line('everything under 1 µs', rest),
    line(
      '**main thread, sampled**',
      variants.map((v) => sum(cells.get(v)!.groups.values())),
    ),
    line(
      'process CPU (all threads)',
      variants.map((v) => cells.get(v)!.cpu),
    ),
  ].join('\n');
}

/** This library's functions, by self time (those at 0.5 µs per request or more in a variant). */
function libraryTable(endpoint: Endpoint, cells: Map<string, Cell>): string {
  const variants = [...cells.keys()].filter((variant) => cells.get(variant)!.library.size > 0);
  if (variants.length === 0) return '';
  const names = new Set(variants.flatMap((variant) => [...cells.get(variant)!.library.keys()]));
  const rows = [...names]
    .map((name) => ({ name, values: variants.map((v) => cells.get(v)!.library.get(name) ?? 0) }))
    .filter((row) => Math.max(...row.values) >= 0.5)
    .sort((a, b) => Math.max(...b.values) - Math.max(...a.values));
  return [
    '',
    `Functions of this library on /${endpoint.path} (self µs per request):`,
    '',
    `| function | ${variants.join(' | ')} |`,
    `|---|${variants.map(() => '---:').join('|')}|`,
    ...rows.map(
      (row) => `| \`${row.name}\` | ${row.values.map((v) => v.toFixed(1)).join(' | ')} |`,
    ),
  ].join('\n');
}

async function main(): Promise<void> {
  await resetTable();
  const { nodes, missing } = nodeBinaries(benchDir);
  const dir = path.join(benchDir, '.tmp', 'profiles');
  rmSync(dir, { recursive: true, force: true });
  const sections: string[] = [
    `# Profile by package (${REQUESTS} requests per cell after ${REQUESTS / 2} of warm-up, ` +
      `${CONNECTIONS} connections, sampled every ${INTERVAL} µs)`,
    ...missing.map((line) => `\n- not run: ${line}`),
  ];
  for (const node of nodes) {
    sections.push(`\n## ${node.label} (${node.version})`);
    for (const endpoint of ENDPOINTS) {
      const cells = new Map<string, Cell>();
      const nodeDir = path.join(dir, node.label.replace(' ', ''));
      mkdirSync(nodeDir, { recursive: true });
      for (const variant of VARIANTS) {
        cells.set(variant, await profileVariant(node.path, variant, endpoint, nodeDir));
        console.error(`${node.label} /${endpoint.path} ${variant}: done`);
      }
      sections.push('', table(endpoint, cells), libraryTable(endpoint, cells));
    }
  }
  const markdown = sections.join('\n');
  writeFileSync(path.join(dir, 'profile.md'), markdown + '\n');
  console.log(markdown);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
