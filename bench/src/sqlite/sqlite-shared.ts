/**
 * What every SQLite variant shares (bench/src/sqlite/README in bench/README.md): the database
 * file, the TypeORM options on better-sqlite3, the SQL of each endpoint.
 */
import { createRequire } from 'node:module';
import type { Repository } from 'typeorm';
import { BenchItem } from '../shared.js';

export { BenchItem };

/** bench's own better-sqlite3 (bench/package.json), handed to TypeORM as its `driver`. */
export const BetterSqlite3: unknown = createRequire(import.meta.url)('better-sqlite3');

/** The database file a server opens (the driver copies a seeded template there per cell). */
export const SQLITE_FILE = process.env.BENCH_SQLITE_FILE ?? '.tmp/sqlite/bench.db';

/** TypeORM options, identical for every variant: one file, WAL, synchronous = NORMAL. */
export const sqliteOptions = {
  type: 'better-sqlite3' as const,
  database: SQLITE_FILE,
  driver: BetterSqlite3,
  entities: [BenchItem],
  synchronize: false,
  // `--trace` (sqlite-bench.ts) prints every statement the server sends.
  logging: process.env.BENCH_SQLITE_LOG === '1' ? ('all' as const) : false,
  enableWAL: true,
  prepareDatabase: (db: { pragma(sql: string): unknown }) => {
    db.pragma('synchronous = NORMAL');
  },
};

/** Rows seeded before each cell; /read picks one of them by primary key. */
export const SEED_ROWS = 1000;

let next = 0;
/** A seeded primary key, cycling. */
export function someId(): number {
  next = (next + 1) % SEED_ROWS;
  return next + 1;
}

/** The error /mixed throws after its writes when asked to fail (`?fail=1`). */
export class IntendedFailure extends Error {
  constructor(name: string) {
    super(`intended failure after writing ${name}`);
  }
}

/** One turn of the event loop: what any real I/O inside a transaction (an HTTP call, a file) gives. */
export function otherIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The work of POST /write and POST /mixed, on the repository the variant's transaction gives: one
 * INSERT of the row named by the client, then (/mixed: after one turn of the event loop, see
 * `otherIo`) a SELECT that reads it back, then the failure when asked. better-sqlite3 answers
 * synchronously, so without the turn a request's whole transaction runs in one macrotask and two
 * requests' transactions never overlap on the shared connection; with it they do.
 */
export async function writeRow(
  repo: Repository<BenchItem>,
  name: string,
  options: { fail?: boolean; io?: boolean } = {},
) {
  const result = await repo.insert({ name });
  const id = Number(result.identifiers[0].id);
  if (options.io) await otherIo();
  const seen = await repo.countBy({ name });
  if (options.fail) throw new IntendedFailure(name);
  return { id, name, seen };
}

/** The row of GET /read. */
export function readRow(repo: Repository<BenchItem>) {
  return repo.findOneBy({ id: someId() });
}

/** What /mixed is asked (query string): the row's name, whether to fail; always one I/O turn. */
export function mixedAsk(name: string | undefined, fail: string | undefined) {
  return { fail: fail === '1', io: true, name: named(name) };
}

/** The client's name of a written row (`?n=`). */
export function named(name: string | undefined): string {
  if (!name) throw new Error('missing ?n=<row name>');
  return name;
}
