import {
  Column,
  Entity,
  PrimaryGeneratedColumn,
  type EntityManager,
  type Repository,
} from 'typeorm';
import type { SpanCounter } from './otel/sdk.js';

/** Everything every variant shares: the entity, the pool, the SQL of each endpoint. */
export const DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Connections in each variant's pool (BENCH_POOL overrides it, e.g. 10 for /commit-then-wait). */
export const POOL_SIZE = Number(process.env.BENCH_POOL ?? 20);
export const TABLE = 'bench_item';
/** Rows seeded before a run; /read and /chain pick one of them by primary key. */
export const SEED_ROWS = 1000;
/** The variants the counting drivers (`promises`, `profile`) run by default: yardsticks, the library's four paths, the peers. */
export const MAIN_VARIANTS = [
  'baseline',
  'context-floor',
  'nestjs-typeorm-context',
  'ntc-repositories',
  'ntc-inject-session',
  'ntc-plain-join',
  'nestjs-cls',
  'typeorm-transactional',
];
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

/** Nested `@Transactional()` (REQUIRED) calls of GET /deep, one query each. */
export const DEPTH = 20;
/** Independent sessions GET /fanout opens at once. */
export const FANOUT = 10;

/**
 * SQL naming the transaction a query runs in without assigning it an xid (txid_current() would,
 * turning every read into a commit that flushes WAL): the backend and the transaction's start
 * time, which now() keeps for the whole transaction and which differs between two transactions.
 */
const TX_MARK = `pg_backend_pid()::text || '@' || now()::text`;

/** A row of /multi or /deep with the transaction it was read in. */
export interface Marked {
  id: number;
  tx: string;
}

/** The three queries of GET /multi, one per provider; each returns the transaction it ran in. */
export const multiQueries = {
  /** 1: a row by primary key. */
  async byId(repo: Repository<BenchItem>, id: number): Promise<Marked> {
    const row = await repo
      .createQueryBuilder('i')
      .select('i.id', 'id')
      .addSelect(TX_MARK, 'tx')
      .where('i.id = :id', { id })
      .getRawOne<Marked>();
    if (!row) throw new Error('seed row missing');
    return row;
  },
  /** 2: a count over ten primary keys. */
  async count(repo: Repository<BenchItem>, id: number): Promise<{ n: number; tx: string }> {
    const row = await repo
      .createQueryBuilder('i')
      .select('count(*)::int', 'n')
      .addSelect(TX_MARK, 'tx')
      .where('i.id BETWEEN :from AND :to', { from: id, to: id + 9 })
      .getRawOne<{ n: number; tx: string }>();
    return row!;
  },
  /** 3: three rows by a list of primary keys. */
  async byIds(repo: Repository<BenchItem>, id: number): Promise<{ n: number; tx: string }> {
    const rows = await repo
      .createQueryBuilder('i')
      .select('i.name', 'name')
      .addSelect(TX_MARK, 'tx')
      .where('i.id IN (:...ids)', { ids: [id, id + 1, id + 2] })
      .getRawMany<{ name: string; tx: string }>();
    return { n: rows.length, tx: rows[0]?.tx ?? '' };
  },
};

/** What GET /multi answers: the transactions of its three queries (equal if atomic). */
export interface MultiResult {
  id: number;
  tx: string[];
}

/** Runs the three /multi queries one after the other, each through its own provider. */
export async function multi(
  byId: (id: number) => Promise<Marked>,
  count: (id: number) => Promise<{ tx: string }>,
  byIds: (id: number) => Promise<{ tx: string }>,
): Promise<MultiResult> {
  const id = someId();
  const one = await byId(id);
  const two = await count(id);
  const three = await byIds(id);
  return { id: one.id, tx: [one.tx, two.tx, three.tx] };
}

/** What each level of GET /deep answers: calls below it, first and last transaction seen. */
export interface DeepResult {
  calls: number;
  first: string;
  last: string;
}

/** One level of /deep: its query's row (the level's call and the rest are in each variant). */
export function deepLevel(row: Marked, inner: DeepResult | undefined): DeepResult {
  return inner
    ? { calls: inner.calls + 1, first: row.tx, last: inner.last }
    : { calls: 1, first: row.tx, last: row.tx };
}

/** The one query of each /fanout session: names the backend it ran on. */
export async function pidOf(queryable: Pick<EntityManager, 'query'>): Promise<number> {
  const rows: Array<{ pid: number }> = await queryable.query('SELECT pg_backend_pid() AS pid');
  return rows[0].pid;
}

/** Runs the /fanout branches at once (FANOUT independent sessions). */
export async function fanout(branch: () => Promise<number>): Promise<{ pids: number[] }> {
  const branches: Array<Promise<number>> = [];
  for (let i = 0; i < FANOUT; i++) branches.push(branch());
  return { pids: await Promise.all(branches) };
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

/** An endpoint every variant serves. */
export interface Endpoint {
  path: string;
  method: 'GET' | 'POST';
}

/** Every endpoint: each variant is verified on all of them. */
export const ALL_ENDPOINTS: Endpoint[] = [
  { path: 'noop', method: 'GET' },
  { path: 'read', method: 'GET' },
  { path: 'write', method: 'POST' },
  { path: 'chain', method: 'GET' },
  { path: 'parallel', method: 'GET' },
  { path: 'commit-then-wait', method: 'POST' },
  { path: 'multi', method: 'GET' },
  { path: 'deep', method: 'GET' },
  { path: 'fanout', method: 'GET' },
];

/** Describes a variant to the server entry point. */
export interface Variant {
  /** The root module of the variant's app. */
  module(): Promise<unknown> | unknown;
  /** Runs before the app is created (global patches). */
  prepare?(): void;
  /** The spans its OpenTelemetry SDK exported (the `ntc-otel*` variants, bench/src/otel/). */
  spans?: SpanCounter;
}
