/**
 * Promises per request: how much asynchronous work each variant makes the runtime do, counted
 * exactly (async_hooks `init` of type PROMISE in the server process) over sequential requests.
 * Unlike req/s and CPU time it does not move with the machine's load, so it shows a change of
 * the hot path at once. `npm run bench:promises`; honours BENCH_VARIANTS and BENCH_PREVIOUS.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerStats } from './server.js';
import { ALL_ENDPOINTS } from './shared.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const benchDir = path.resolve(here, '../../..');
const PORT = Number(process.env.BENCH_PORT ?? 3917);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 300);
/** Every endpoint but /commit-then-wait (its 20 ms wait makes sequential runs slow). */
const ENDPOINTS = ALL_ENDPOINTS.filter((endpoint) => endpoint.path !== 'commit-then-wait');
const previousDist = process.env.BENCH_PREVIOUS;
const VARIANTS = [
  'baseline',
  'context-floor',
  'nestjs-typeorm-context',
  'ntc-repositories',
  'ntc-inject-session',
  'nestjs-cls',
  'typeorm-transactional',
  ...(previousDist ? ['previous'] : []),
  // The other library paths on the previous build: only when BENCH_VARIANTS names them.
  ...(previousDist && process.env.BENCH_VARIANTS
    ? ['previous-ntc-repositories', 'previous-ntc-inject-session']
    : []),
].filter(
  (name) => !process.env.BENCH_VARIANTS || process.env.BENCH_VARIANTS.split(',').includes(name),
);

function start(
  variant: string,
): Promise<{ child: ChildProcess; stats(reset?: boolean): Promise<ServerStats> }> {
  const previous = variant === 'previous' || variant.startsWith('previous-');
  const file =
    variant === 'previous' ? 'nestjs-typeorm-context' : variant.replace(/^previous-/, '');
  const child = fork(path.join(here, 'server.js'), [file, String(PORT)], {
    env: {
      ...process.env,
      BENCH_COUNT_PROMISES: '1',
      BENCH_LIBRARY: previous ? 'dist-previous' : 'dist',
    },
    execArgv: ['--no-warnings'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    cwd: benchDir,
  });
  const next = (type: string) =>
    new Promise<any>((resolve) => {
      const listener = (message: { type: string; stats?: ServerStats }) => {
        if (message.type !== type) return;
        child.off('message', listener);
        resolve(message.stats ?? message);
      };
      child.on('message', listener);
    });
  const stats = async (reset = false) => {
    const answer = next(reset ? 'reset' : 'stats');
    child.send({ cmd: reset ? 'reset' : 'stats' });
    return answer;
  };
  return next('ready').then(() => ({ child, stats }));
}

async function call(endpoint: (typeof ENDPOINTS)[number]): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${PORT}/${endpoint.path}`, {
    method: endpoint.method,
  });
  await response.text();
  if (response.status >= 300)
    throw new Error(`${endpoint.method} /${endpoint.path} answered ${response.status}`);
}

async function main(): Promise<void> {
  if (previousDist) {
    const target = path.join(benchDir, '.tmp', 'dist-previous');
    rmSync(target, { recursive: true, force: true });
    cpSync(path.resolve(benchDir, '..', previousDist), target, { recursive: true });
  }
  const rows: string[] = [];
  for (const variant of VARIANTS) {
    const server = await start(variant);
    const cells: string[] = [];
    for (const endpoint of ENDPOINTS) {
      for (let i = 0; i < 50; i++) await call(endpoint); // warm up: JIT, pools, lazy init
      await server.stats(true);
      for (let i = 0; i < REQUESTS; i++) await call(endpoint);
      const { promises, requests } = await server.stats();
      cells.push((promises / requests).toFixed(1));
    }
    server.child.send({ cmd: 'stop' });
    await new Promise((resolve) => server.child.once('exit', resolve));
    rows.push(`| ${variant} | ${cells.join(' | ')} |`);
    console.log(rows.at(-1));
  }
  console.log(
    `\nPromises per request (${process.version}, ${REQUESTS} sequential requests per cell):\n`,
  );
  console.log(`| variant | ${ENDPOINTS.map((e) => `/${e.path}`).join(' | ')} |`);
  console.log(`|---|${ENDPOINTS.map(() => '---:').join('|')}|`);
  for (const row of rows) console.log(row);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
