/**
 * One SQLite variant's server, in a process of its own:
 * `node .tmp/js/bench/sqlite/sqlite-server.js <variant> <port>` with BENCH_SQLITE_FILE set.
 * Reports readiness over IPC; answers `state` (whether a transaction is open on the one
 * connection, CPU time used) and `stop`.
 */
import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Variant } from '../shared.js';

/** Messages sqlite-bench.js sends. */
export type SqliteServerCommand = { cmd: 'state' } | { cmd: 'stop' };

/** What `state` answers. */
export interface SqliteServerState {
  type: 'state';
  /** better-sqlite3's `inTransaction` of the data source's one connection. */
  inTransaction: boolean;
  /** CPU time of the process so far (user + system), microseconds. */
  cpuMicros: number;
}

async function main(): Promise<void> {
  const [name, port] = process.argv.slice(2);
  const variant = ((await import(`./variants/${name}.js`)) as { default: Variant }).default;
  variant.prepare?.();
  const { DataSource } = await import('typeorm');
  const app: INestApplication = await NestFactory.create((await variant.module()) as never, {
    logger: ['error', 'warn'],
  });
  const connection = (
    app.get(DataSource).driver as unknown as { databaseConnection: { inTransaction: boolean } }
  ).databaseConnection;
  process.on('message', (message: SqliteServerCommand) => {
    if (message.cmd === 'state') {
      const cpu = process.cpuUsage();
      const state: SqliteServerState = {
        type: 'state',
        inTransaction: connection.inTransaction,
        cpuMicros: cpu.user + cpu.system,
      };
      process.send!(state);
    } else if (message.cmd === 'stop') {
      void app.close().finally(() => process.exit(0));
    }
  });
  await app.listen(Number(port), '127.0.0.1');
  process.send!({ type: 'ready' });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
