import {
  Column,
  Entity,
  PrimaryGeneratedColumn,
  type EntityManager,
  type Repository,
} from 'typeorm';

/** Everything every variant shares: the entity, the pool, the SQL of each endpoint. */
export const DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Connections in each variant's pool (BENCH_POOL overrides it, e.g. 10 for /commit-then-wait). */
export const POOL_SIZE = Number(process.env.BENCH_POOL ?? 20);
export const TABLE = 'bench_item';
/** Rows seeded before a run; /read and /chain pick one of them by primary key. */
export const SEED_ROWS = 1000;
/** Seconds each of the three /parallel transactions sleeps. */
export const SLEEP_SECONDS = 0.02;

@Entity(TABLE)
export class BenchItem {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar' })
  name!: string;
}

/** TypeORM options, identical for every variant. */
export const typeormOptions = {
  type: 'postgres' as const,
  url: DATABASE_URL,
  entities: [BenchItem],
  synchronize: false,
  logging: false,
  poolSize: POOL_SIZE,
};

let next = 0;
/** A seeded primary key, cycling. */
export function someId(): number {
  next = (next + 1) % SEED_ROWS;
  return next + 1;
}

/** What GET /chain answers: the new row and proof that its INSERT ran in the chain's transaction. */
export interface ChainResult {
  read: number;
  id: number;
  /** txid_current() of the transaction that ran the third query. */
  tx: string;
  /** xmin of the inserted row: equal to `tx` only if the INSERT ran in that same transaction. */
  xmin: string;
}

/** The three queries of GET /chain, split the way a service chain would split them. */
export const chainQueries = {
  /** 1: SELECT by primary key. */
  async read(repo: Repository<BenchItem>): Promise<number> {
    const row = await repo.findOneBy({ id: someId() });
    if (!row) throw new Error('seed row missing');
    return row.id;
  },
  /** 2: INSERT. */
  async insert(repo: Repository<BenchItem>, name: string): Promise<number> {
    const result = await repo.insert({ name });
    return Number(result.identifiers[0].id);
  },
  /** 3: SELECT by primary key, returning the transaction ids that prove atomicity. */
  async check(repo: Repository<BenchItem>, id: number): Promise<{ tx: string; xmin: string }> {
    const rows: Array<{ tx: string; xmin: string }> = await repo.query(
      `SELECT txid_current()::text AS tx, xmin::text AS xmin FROM ${TABLE} WHERE id = $1`,
      [id],
    );
    return rows[0];
  },
};

/** The one query of each /parallel transaction: sleeps and names the backend it ran on. */
export async function sleepOn(manager: EntityManager): Promise<number> {
  const rows: Array<{ pid: number }> = await manager.query(
    `SELECT pg_sleep(${SLEEP_SECONDS}), pg_backend_pid() AS pid`,
  );
  return rows[0].pid;
}

/** Runs the three /parallel branches at once and reports their backends and wall time. */
export async function parallel(
  branch: () => Promise<number>,
): Promise<{ pids: number[]; ms: number }> {
  const started = performance.now();
  const pids = await Promise.all([branch(), branch(), branch()]);
  return { pids, ms: performance.now() - started };
}

/** Milliseconds /commit-then-wait waits on something that is not the database (an HTTP call, a file). */
export const WAIT_MS = 20;

/** The non-database wait of /commit-then-wait. */
export function waitElsewhere(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, WAIT_MS));
}

let written = 0;
/** A distinct name for a written row. */
export function rowName(prefix: string): string {
  written += 1;
  return `${prefix}-${process.pid}-${written}`;
}

/** Describes a variant to the server entry point. */
export interface Variant {
  /** The root module of the variant's app. */
  module(): Promise<unknown> | unknown;
  /** Runs before the app is created (global patches). */
  prepare?(): void;
}
