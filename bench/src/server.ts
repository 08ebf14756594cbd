/**
 * One variant's server, in a process of its own: `node .tmp/server.js <variant> <port>`.
 * Started by run.js with an IPC channel, over which it reports readiness and its counters.
 */
import 'reflect-metadata';
import { createHook } from 'node:async_hooks';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { SpanCounts } from './otel/sdk.js';
import type { Variant } from './shared.js';

/** Messages run.js sends. */
export type ServerCommand =
  | { cmd: 'reset' }
  | { cmd: 'stats' }
  | { cmd: 'stop' }
  | { cmd: 'spans' }
  | { cmd: 'profile-start'; interval: number }
  | { cmd: 'profile-stop'; file: string };

/** Counters since the last reset. */
export interface ServerStats {
  /** Server CPU time (user + system), microseconds. */
  cpuMicros: number;
  /** HTTP requests the server received. */
  requests: number;
  /** Pool checkouts (a connection handed to the app). */
  checkouts: number;
  /** Most connections checked out at once. */
  peakHeld: number;
  /** Milliseconds connections were checked out, summed over all of them. */
  heldMs: number;
  /** Connections checked out right now. */
  held: number;
  rss: number;
  /** Peak RSS of the process so far, bytes. */
  maxRss: number;
  /** Promises created (async_hooks PROMISE inits), when BENCH_COUNT_PROMISES=1. */
  promises: number;
}

interface PgPool {
  on(event: 'acquire', listener: (client: object) => void): void;
  on(event: 'release', listener: (error: unknown, client: object) => void): void;
}

async function main(): Promise<void> {
  const [name, port] = process.argv.slice(2);
  const variant = ((await import(`./variants/${name}.js`)) as { default: Variant }).default;
  variant.prepare?.();
  // Only now: the `ntc-otel*` variants hook `require()` before TypeORM and pg load.
  const { DataSource } = await import('typeorm');
  const app: INestApplication = await NestFactory.create((await variant.module()) as never, {
    logger: ['error', 'warn'],
  });
  const pool = (app.get(DataSource).driver as unknown as { master: PgPool }).master;
  let held = 0;
  let peakHeld = 0;
  let checkouts = 0;
  let heldMs = 0;
  const since = new WeakMap<object, number>();
  pool.on('acquire', (client) => {
    checkouts += 1;
    held += 1;
    if (held > peakHeld) peakHeld = held;
    since.set(client, performance.now());
  });
  pool.on('release', (_error, client) => {
    held -= 1;
    heldMs += performance.now() - (since.get(client) ?? performance.now());
  });
  let requests = 0;
  (app.getHttpServer() as import('node:http').Server).on('request', () => {
    requests += 1;
  });
  let cpu = process.cpuUsage();
  let promises = 0;
  if (process.env.BENCH_COUNT_PROMISES === '1') {
    createHook({
      init(_id, type) {
        if (type === 'PROMISE') promises += 1;
      },
    }).enable();
  }

  // The V8 sampling profiler of this thread, started and stopped by bench:profile.
  const profiler = new Session();
  process.on('message', (message: ServerCommand) => {
    switch (message.cmd) {
      case 'reset':
        checkouts = 0;
        requests = 0;
        promises = 0;
        heldMs = 0;
        peakHeld = held;
        void (variant.spans?.reset() ?? Promise.resolve()).then(() => {
          cpu = process.cpuUsage();
          process.send!({ type: 'reset' });
        });
        break;
      case 'spans':
        void (variant.spans?.counts() ?? Promise.resolve(undefined)).then(
          (spans: SpanCounts | undefined) => process.send!({ type: 'spans', spans }),
        );
        break;
      case 'stats': {
        const used = process.cpuUsage(cpu);
        const stats: ServerStats = {
          cpuMicros: used.user + used.system,
          requests,
          checkouts,
          peakHeld,
          heldMs,
          held,
          rss: process.memoryUsage.rss(),
          maxRss: process.resourceUsage().maxRSS * 1024,
          promises,
        };
        process.send!({ type: 'stats', stats });
        break;
      }
      case 'stop':
        void app.close().finally(() => process.exit(0));
        break;
      case 'profile-start':
        profiler.connect();
        profiler.post('Profiler.enable', () =>
          profiler.post('Profiler.setSamplingInterval', { interval: message.interval }, () =>
            profiler.post('Profiler.start', () => process.send!({ type: 'profile-start' })),
          ),
        );
        break;
      case 'profile-stop':
        profiler.post('Profiler.stop', (error, result) => {
          if (!error) writeFileSync(message.file, JSON.stringify(result.profile));
          profiler.disconnect();
          process.send!({ type: 'profile-stop', error: error?.message });
        });
        break;
    }
  });
  await app.listen(Number(port), '127.0.0.1');
  process.send!({ type: 'ready' });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
