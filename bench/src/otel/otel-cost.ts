/**
 * What tracing costs per request: server CPU µs per request and the spans each request exported,
 * by instrumentation scope, for this library without OpenTelemetry and with each `ntc-otel*`
 * variant (bench/src/otel/). `npm run bench:otel`. Per round, each variant's server starts fresh
 * (variants alternate, each round starting with the next one); per endpoint: a warm-up, a reset,
 * then the measured requests (autocannon, 10 connections). Medians over rounds. CPU time on the
 * shared 2-core machine moves with its load: instructions per request
 * (bench/instructions/measure.sh) are the robust figure; this run gives CPU and the span counts.
 * Knobs: BENCH_VARIANTS, BENCH_ENDPOINTS (default noop,read,write,multi), BENCH_REQUESTS (1000),
 * BENCH_WARMUP (1000), BENCH_ROUNDS (3), BENCH_PORT.
 */
import autocannon from 'autocannon';
import { resetTable } from '../database.js';
import { type Server, startServer } from '../server-process.js';
import { ALL_ENDPOINTS } from '../shared.js';
import type { SpanCounts } from './sdk.js';

const PORT = Number(process.env.BENCH_PORT ?? 3917);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const list = (value: string | undefined, fallback: string[]) => value?.split(',') ?? fallback;
const VARIANTS = list(process.env.BENCH_VARIANTS, [
  'nestjs-typeorm-context',
  'ntc-otel-sdk',
  'ntc-otel',
  'ntc-otel-typeorm',
  'ntc-otel-pg',
  'ntc-otel-pg-ours',
]);
const ENDPOINTS = list(process.env.BENCH_ENDPOINTS, ['noop', 'read', 'write', 'multi']).map(
  (path) => ALL_ENDPOINTS.find((endpoint) => endpoint.path === path)!,
);

/** One measured cell. */
interface Cell {
  cpuPerRequest: number;
  requestsPerSecond: number;
  spans: SpanCounts;
  requests: number;
}

async function load(endpoint: (typeof ENDPOINTS)[number], amount: number) {
  const result = await autocannon({
    url: `http://127.0.0.1:${PORT}/${endpoint.path}`,
    method: endpoint.method as 'GET' | 'POST',
    connections: 10,
    amount,
  });
  const failed = result.non2xx + result.errors + result.timeouts;
  if (failed > 0) throw new Error(`/${endpoint.path}: ${failed} failed requests`);
  return result;
}

async function measure(server: Server, endpoint: (typeof ENDPOINTS)[number]): Promise<Cell> {
  await load(endpoint, WARMUP);
  await server.send({ cmd: 'reset' });
  const result = await load(endpoint, REQUESTS);
  const stats = await server.stats();
  const { spans } = (await server.send({ cmd: 'spans' })) as { spans?: SpanCounts };
  return {
    cpuPerRequest: stats.cpuMicros / stats.requests,
    requestsPerSecond: result.requests.average,
    spans: spans ?? { byScope: {}, byName: {} },
    requests: stats.requests,
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function main(): Promise<void> {
  await resetTable();
  const cells = new Map<string, Cell[]>();
  for (let round = 0; round < ROUNDS; round++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
    for (const variant of order) {
      const server = await startServer({ variant, port: PORT });
      try {
        for (const endpoint of ENDPOINTS) {
          const cell = await measure(server, endpoint);
          const key = `${variant} /${endpoint.path}`;
          cells.set(key, [...(cells.get(key) ?? []), cell]);
          console.error(
            `round ${round + 1} ${key}: ${cell.cpuPerRequest.toFixed(0)} µs/request, ` +
              `${JSON.stringify(cell.spans.byScope)} spans over ${cell.requests} requests`,
          );
        }
      } finally {
        await server.stop();
      }
    }
  }
  const baseline = (path: string) =>
    median(cells.get(`nestjs-typeorm-context /${path}`)?.map((c) => c.cpuPerRequest) ?? [NaN]);
  console.log(
    '| Variant | Endpoint | CPU µs/request (median) | vs no tracing | req/s (10 connections) | spans/request by scope |',
  );
  console.log('|---|---|--:|--:|--:|---|');
  for (const endpoint of ENDPOINTS) {
    for (const variant of VARIANTS) {
      const runs = cells.get(`${variant} /${endpoint.path}`) ?? [];
      const cpu = median(runs.map((c) => c.cpuPerRequest));
      const rps = median(runs.map((c) => c.requestsPerSecond));
      const last = runs[runs.length - 1];
      const perScope = Object.entries(last?.spans.byScope ?? {})
        .map(([scope, n]) => `${scope} ${(n / last.requests).toFixed(2)}`)
        .join(', ');
      const delta = cpu - baseline(endpoint.path);
      console.log(
        `| ${variant} | /${endpoint.path} | ${cpu.toFixed(0)} | ${delta >= 0 ? '+' : ''}${delta.toFixed(0)} | ${rps.toFixed(0)} | ${perScope || 'none'} |`,
      );
    }
  }
  console.log('\nSpans per request by name (last round):\n');
  for (const [key, runs] of cells) {
    const last = runs[runs.length - 1];
    const names = Object.entries(last.spans.byName).map(
      ([name, n]) => `${name} × ${(n / last.requests).toFixed(2)}`,
    );
    if (names.length > 0) console.log(`- ${key}: ${names.join('; ')}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
