/**
 * A real PgBouncer in transaction pooling mode in front of a PostgreSQL, for the suite
 * (`PGBOUNCER=1`, see global-setup.ts) and for test/pgbouncer/. Its config and auth file live in a
 * temporary directory; as root it runs as the `postgres` user (or `nobody`), since PgBouncer
 * refuses to run as root. The caller owns the returned handle and stops it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.ts';

/** A running PgBouncer: its client URL (same user, password and database as the server's). */
export interface PgBouncer {
  url: string;
  /** The admin console (`SHOW POOLS`, `SHOW SERVERS`), database `pgbouncer`. */
  adminUrl: string;
  stop(): Promise<void>;
}

/** Server connections PgBouncer opens per user and database unless told otherwise. */
export const PGBOUNCER_POOL_SIZE = 40;

/** The unprivileged user PgBouncer runs as when we are root, with its uid and gid. */
function runAs(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name]).toString());
      const gid = Number(execFileSync('id', ['-g', name]).toString());
      return { name, uid, gid };
    } catch {
      // no such user: try the next one
    }
  }
  throw new Error('PgBouncer refuses to run as root and neither postgres nor nobody exists');
}

/** Resolves once a query through `url` succeeds (or fails after `ms`). */
async function waitForQuery(url: string, ms: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SHOW VERSION');
      return;
    } catch (error) {
      if (child.exitCode !== null || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * Starts PgBouncer (`pool_mode = transaction`) in front of the server `serverUrl` names, with at
 * most `poolSize` server connections per user and database.
 */
export async function startPgBouncer(
  serverUrl: string,
  poolSize = PGBOUNCER_POOL_SIZE,
): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ntc-pgbouncer-'));
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
      // md5 with the plain password in the auth file: PgBouncer logs in to the server with it.
      password ? 'auth_type = md5' : 'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      `admin_users = ${user}`,
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 1000',
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  const as = runAs();
  if (as) {
    chmodSync(dir, 0o700);
    for (const file of ['', 'pgbouncer.ini', 'users.txt'])
      chownSync(join(dir, file), as.uid, as.gid);
  }
  const child = spawn('pgbouncer', as ? ['-u', as.name, config] : [config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', resolve);
  });
  await spawned;
  const auth = password ? `${encodeURIComponent(user)}:${encodeURIComponent(password)}` : user;
  const url = `postgres://${auth}@127.0.0.1:${port}${server.pathname}`;
  const adminUrl = `postgres://${auth}@127.0.0.1:${port}/pgbouncer`;
  try {
    await waitForQuery(adminUrl, 10000, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`PgBouncer did not start: ${String(error)}\n${stderr}`, { cause: error });
  }
  return {
    url,
    adminUrl,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Rows of an admin console command (`SHOW POOLS`, `SHOW SERVERS`, ...). */
export async function pgbouncerShow(
  adminUrl: string,
  what: string,
): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query(`SHOW ${what}`)).rows as Array<Record<string, unknown>>;
  } finally {
    await client.end();
  }
}
