/**
 * Promises per request: how much asynchronous work each variant makes the runtime do, counted
 * exactly (async_hooks `init` of type PROMISE in the server process) over sequential requests.
 * Unlike req/s and CPU time it does not move with the machine's load, so it shows a change of
 * the hot path at once. `npm run bench:promises`; honours BENCH_VARIANTS and BENCH_PREVIOUS.
 */
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { resetTable } from './database.js';
import { benchDir, type Server, startServer, variantSource } from './server-process.js';
import { ALL_ENDPOINTS, MAIN_VARIANTS } from './shared.js';

const PORT = Number(process.env.BENCH_PORT ?? 3917);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 300);
/** Every endpoint but /commit-then-wait (its 20 ms wait makes sequential runs slow). */
const ENDPOINTS = ALL_ENDPOINTS.filter((endpoint) => endpoint.path !== 'commit-then-wait');
const previousDist = process.env.BENCH_PREVIOUS;
const VARIANTS = [
  ...MAIN_VARIANTS,
  ...(previousDist ? ['previous'] : []),
  // The other library paths on the previous build: only when BENCH_VARIANTS names them.
  ...(previousDist && process.env.BENCH_VARIANTS
    ? ['previous-ntc-repositories', 'previous-ntc-inject-session']
    : []),
].filter(
  (name) => !process.env.BENCH_VARIANTS || process.env.BENCH_VARIANTS.split(',').includes(name),
);

function start(variant: string): Promise<Server> {
  return startServer({ ...variantSource(variant), port: PORT, env: { BENCH_COUNT_PROMISES: '1' } });
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
  await resetTable();
  const rows: string[] = [];
  for (const variant of VARIANTS) {
    const server = await start(variant);
    const cells: string[] = [];
    try {
      for (const endpoint of ENDPOINTS) {
        for (let i = 0; i < 50; i++) await call(endpoint); // warm up: JIT, pools, lazy init
        await server.send({ cmd: 'reset' });
        for (let i = 0; i < REQUESTS; i++) await call(endpoint);
        const { promises, requests } = await server.stats();
        cells.push((promises / requests).toFixed(1));
      }
    } finally {
      await server.stop();
    }
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
