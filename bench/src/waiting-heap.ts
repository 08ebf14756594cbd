/**
 * What a request keeps on the heap while it waits for a pooled connection (`npm run
 * bench:waiting`): under contention every waiting request survives a scavenge or two, so what it
 * keeps is what the garbage collector copies and promotes per request. Per variant: the table is
 * locked (`LOCK TABLE ... ACCESS EXCLUSIVE` from a client of its own), so the pool's connections
 * block in their SELECT; `HOLDERS` (the pool size) and then `HOLDERS + WAITERS` requests to /read
 * are sent, a heap snapshot taken each time (a snapshot collects garbage first), and the
 * difference divided by `WAITERS` is what one waiting request keeps, by kind of object. Exact up
 * to a few bytes: the same run gives the same counts. BENCH_VARIANTS (default context-floor,
 * ntc-repositories, typeorm-transactional, nestjs-cls), BENCH_NODES, BENCH_WAITERS (100).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { resetTable } from './database.js';
import { nodeBinaries } from './node-binaries.js';
import { benchDir, startServer } from './server-process.js';
import { DATABASE_URL, POOL_SIZE, TABLE } from './shared.js';

const PORT = Number(process.env.BENCH_PORT ?? 3917);
const WAITERS = Number(process.env.BENCH_WAITERS ?? 100);
const VARIANTS = (
  process.env.BENCH_VARIANTS ?? 'context-floor,ntc-repositories,typeorm-transactional,nestjs-cls'
).split(',');
const out = path.join(benchDir, '.tmp', 'waiting');

/** Objects by kind: how many, and their shallow size in bytes. */
type Census = Map<string, { count: number; bytes: number }>;

/** Heap snapshot nodes counted by kind (constructor name; closures and strings by type). */
function census(file: string): Census {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const { node_fields: fields, node_types: types } = snapshot.snapshot.meta;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const counts: Census = new Map();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[0][snapshot.nodes[i + typeAt]];
    if (type === 'code') continue; // compiled code: the process's, not a request's
    const name = snapshot.strings[snapshot.nodes[i + nameAt]];
    const kind =
      type === 'object' ? name || '(object)' : type === 'closure' ? '(closure)' : `(${type})`;
    const entry = counts.get(kind) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += snapshot.nodes[i + sizeAt];
    counts.set(kind, entry);
  }
  return counts;
}

/** A heap snapshot of the server with `requests` requests to /read in flight, the table locked. */
async function snapshotWith(variant: string, node: string, requests: number): Promise<Census> {
  const dir = path.join(out, `${variant}-${requests}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const server = await startServer({
    variant,
    port: PORT,
    node,
    execArgv: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`],
  });
  const read = (agent: http.Agent) =>
    new Promise<void>((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port: PORT, path: '/read', agent }, (response) => {
          response.resume();
          response.on('end', resolve);
        })
        .on('error', reject),
    );
  const warm = new http.Agent({ keepAlive: true, maxSockets: 50 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: requests });
  const locker = new pg.Client({ connectionString: DATABASE_URL });
  try {
    // Compiled, pool full; then those sockets closed: an idle keep-alive socket keeps its last
    // request (and the context its keep-alive timer was armed in) until its next one.
    await Promise.all(Array.from({ length: 3000 }, () => read(warm)));
    warm.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE ${TABLE} IN ACCESS EXCLUSIVE MODE`);
    const pending = Array.from({ length: requests }, () => read(agent));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    server.child.kill('SIGUSR2');
    let file: string | undefined;
    while (file === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      file = readdirSync(dir).find((name) => name.endsWith('.heapsnapshot'));
    }
    let size = -1;
    for (;;) {
      // Written when its size stops changing (the server answers nothing meanwhile).
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = readFileSync(path.join(dir, file)).length;
      if (now === size) break;
      size = now;
    }
    await locker.query('COMMIT');
    await Promise.all(pending);
    return census(path.join(dir, file));
  } finally {
    await locker.end().catch(() => undefined);
    warm.destroy();
    agent.destroy();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What one waiting request keeps: (census with waiters − census without) / waiters. */
function perWaiter(base: Census, loaded: Census): Census {
  const result: Census = new Map();
  for (const kind of new Set([...base.keys(), ...loaded.keys()])) {
    const a = base.get(kind) ?? { count: 0, bytes: 0 };
    const b = loaded.get(kind) ?? { count: 0, bytes: 0 };
    result.set(kind, {
      count: (b.count - a.count) / WAITERS,
      bytes: (b.bytes - a.bytes) / WAITERS,
    });
  }
  return result;
}

async function main(): Promise<void> {
  await resetTable();
  mkdirSync(out, { recursive: true });
  const lines = [
    `# Heap kept per request waiting for a connection (pool ${POOL_SIZE}, ${WAITERS} waiting, /read)`,
    '',
  ];
  for (const binary of nodeBinaries(benchDir).nodes) {
    const results = new Map<string, Census>();
    for (const variant of VARIANTS) {
      const base = await snapshotWith(variant, binary.path, POOL_SIZE);
      const loaded = await snapshotWith(variant, binary.path, POOL_SIZE + WAITERS);
      results.set(variant, perWaiter(base, loaded));
      console.log(`[waiting] ${binary.label} ${variant} done`);
    }
    const total = (c: Census, key: 'count' | 'bytes') =>
      [...c.values()].reduce((sum, entry) => sum + entry[key], 0);
    lines.push(`## ${binary.label}`, '', `| kind | ${VARIANTS.join(' | ')} |`);
    lines.push(`|---|${VARIANTS.map(() => '---:').join('|')}|`);
    lines.push(
      `| **bytes (objects)** | ${VARIANTS.map((v) => `**${total(results.get(v)!, 'bytes').toFixed(0)}** (${total(results.get(v)!, 'count').toFixed(0)})`).join(' | ')} |`,
    );
    const kinds = new Set<string>();
    for (const census of results.values()) {
      for (const [kind, entry] of census) if (Math.abs(entry.bytes) >= 100) kinds.add(kind);
    }
    const widest = (kind: string) =>
      Math.max(...VARIANTS.map((v) => Math.abs(results.get(v)!.get(kind)?.bytes ?? 0)));
    for (const kind of [...kinds].sort((a, b) => widest(b) - widest(a))) {
      const cells = VARIANTS.map((v) => {
        const entry = results.get(v)!.get(kind) ?? { count: 0, bytes: 0 };
        return `${entry.bytes.toFixed(0)} (${entry.count.toFixed(1)})`;
      });
      lines.push(`| ${kind.replaceAll('|', '\\|')} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  const file = path.join(out, 'waiting.md');
  writeFileSync(file, lines.join('\n'));
  console.log(lines.join('\n'));
  console.log(`[waiting] written to ${file}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
