/**
 * Starts Debian's pgbouncer in transaction pooling mode in front of a PostgreSQL, with its config
 * in a temporary directory (as the postgres user when run as root: PgBouncer refuses root).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A running PgBouncer and its client URL. */
export interface PgBouncerProcess {
  url: string;
  version: string;
  stop(): Promise<void>;
}

/** Starts PgBouncer on `port` with `poolSize` server connections in front of `serverUrl`. */
export async function startPgBouncer(
  serverUrl: string,
  port: number,
  poolSize: number,
): Promise<PgBouncerProcess> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const dir = mkdtempSync(join(tmpdir(), 'bench-pgbouncer-'));
  const config = join(dir, 'pgbouncer.ini');
  writeFileSync(join(dir, 'users.txt'), `"${user}" "${password}"\n`);
  writeFileSync(
    config,
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'pool_mode = transaction',
      password ? 'auth_type = md5' : 'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 1000',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const root = process.getuid?.() === 0;
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    for (const file of ['', 'pgbouncer.ini', 'users.txt']) chownSync(join(dir, file), uid, gid);
  }
  const child: ChildProcess = spawn('pgbouncer', root ? ['-u', 'postgres', config] : [config], {
    stdio: 'ignore',
  });
  const version = execFileSync('pgbouncer', ['--version']).toString().split('\n')[0]!;
  const url = `postgres://${server.username ? `${server.username}${server.password ? `:${server.password}` : ''}@` : ''}127.0.0.1:${port}${server.pathname}`;
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      break;
    } catch (error) {
      if (attempt > 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return {
    url,
    version,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
