/**
 * A variant's server (`server.ts`) in a process of its own, driven over IPC: the one way every
 * driver (`run`, `promises`, `profile`) starts, commands and stops it.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerCommand, ServerStats } from './server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** bench/ (compiled to bench/.tmp/js/bench/, so that ../../.. is bench/). */
export const benchDir = path.resolve(here, '../../..');

/** A running server. */
export interface Server {
  child: ChildProcess;
  /** Sends `message` and resolves with the server's answer of type `reply`. */
  send(message: ServerCommand, reply?: string): Promise<any>;
  stats(): Promise<ServerStats>;
  stop(): Promise<void>;
}

/** How to start one: the variant, the library build it imports, the Node binary. */
export interface ServerStart {
  variant: string;
  port: number;
  /** `dist` (this build) or `dist-previous` (BENCH_PREVIOUS). */
  library?: 'dist' | 'dist-previous';
  node?: string;
  execArgv?: string[];
  env?: Record<string, string>;
}

/**
 * Where a bench variant's server comes from: `previous` (the `session()` app) and
 * `previous-<variant>` run the same app code on the previous build (`dist-previous`).
 */
export function variantSource(variant: string): Pick<ServerStart, 'variant' | 'library'> {
  if (variant === 'previous')
    return { variant: 'nestjs-typeorm-context', library: 'dist-previous' };
  if (variant.startsWith('previous-'))
    return { variant: variant.slice('previous-'.length), library: 'dist-previous' };
  return { variant, library: 'dist' };
}

/** Starts a server and resolves once it listens (30 s at most). */
export function startServer(start: ServerStart): Promise<Server> {
  const child = fork(path.join(here, 'server.js'), [start.variant, String(start.port)], {
    env: { ...process.env, ...start.env, BENCH_LIBRARY: start.library ?? 'dist' },
    execPath: start.node ?? process.execPath,
    execArgv: ['--no-warnings', ...(start.execArgv ?? [])],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    cwd: benchDir,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const waiters: Array<{ type: string; resolve: (value: any) => void }> = [];
  child.on('message', (message: { type: string; stats?: ServerStats }) => {
    const index = waiters.findIndex((w) => w.type === message.type);
    if (index >= 0) waiters.splice(index, 1)[0].resolve(message.stats ?? message);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const wait = (type: string) =>
    Promise.race([
      new Promise((resolve) => waiters.push({ type, resolve })),
      exited.then((code) => {
        throw new Error(`server exited (${code}) before '${type}':\n${output.trim().slice(-2000)}`);
      }),
    ]);
  const server: Server = {
    child,
    send: (message, reply = message.cmd) => {
      const answer = wait(reply);
      child.send(message);
      return answer;
    },
    stats: () => server.send({ cmd: 'stats' }) as Promise<ServerStats>,
    stop: async () => {
      child.send({ cmd: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`server did not start in 30 s:\n${output}`)), 30_000).unref(),
  );
  return Promise.race([wait('ready'), timeout]).then(
    () => server,
    (error: unknown) => {
      child.kill('SIGKILL');
      throw error;
    },
  );
}
