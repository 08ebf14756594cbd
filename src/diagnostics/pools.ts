import type { DataSource } from 'typeorm';
import { type DbTarget, dbTarget } from './db-target.js';

/** One pool's numbers right now, as OpenTelemetry's connection-pool metrics count them. */
export interface PoolUsage {
  /** Connections handed out. */
  used: number;
  /** Connections open and free. */
  idle: number;
  /** Asks waiting for a connection. */
  pending: number;
  /** The most connections the pool opens, when it says. */
  max?: number;
}

/** A pool of a running app's data source: the primary's, or replica `replica` (from 0). */
export interface LivePool {
  /** The data source's name. */
  dataSource: string;
  /** Its database system, name, host and port. */
  db: DbTarget;
  /** Which replica's pool (from 0); undefined for the primary's. */
  replica?: number;
  /** Its numbers now; undefined when the driver does not tell. */
  usage(): PoolUsage | undefined;
}

/** pg-pool's counters. */
interface PgPoolCounters {
  totalCount?: number;
  idleCount?: number;
  waitingCount?: number;
  options?: { max?: number };
}

/** mysql2's pool internals. */
interface MysqlPoolCounters {
  _allConnections?: { length: number };
  _freeConnections?: { length: number };
  _connectionQueue?: { length: number };
  config?: { connectionLimit?: number };
}

/** The data sources of running apps, per app (one registry per process, shared by copies). */
const registry = ((globalThis as Record<symbol, unknown>)[
  Symbol.for('nestjs-typeorm-context.live-data-sources')
] ??= new Map()) as Map<object, ReadonlyMap<string, DataSource>>;

/** Records an app's data sources while it runs (from its start to its shutdown). */
export function addLiveDataSources(
  app: object,
  dataSources: ReadonlyMap<string, DataSource>,
): void {
  registry.set(app, dataSources);
}

/** Forgets an app's data sources (at its shutdown). */
export function removeLiveDataSources(app: object): void {
  registry.delete(app);
}

/** The pools of every running app's data sources (the primary's, and each replica's). */
export function livePools(): LivePool[] {
  const pools: LivePool[] = [];
  for (const dataSources of registry.values()) {
    for (const [name, dataSource] of dataSources) {
      if (!dataSource.isInitialized) continue;
      const db = dbTarget(dataSource);
      const driver = dataSource.driver as unknown as {
        master?: PgPoolCounters;
        slaves?: PgPoolCounters[];
        pool?: MysqlPoolCounters;
      };
      if (driver.master) pools.push(pgPool(name, db, driver.master));
      if (driver.pool) pools.push(mysqlPool(name, db, driver.pool));
      driver.slaves?.forEach((slave, replica) => pools.push(pgPool(name, db, slave, replica)));
    }
  }
  return pools;
}

function pgPool(
  dataSource: string,
  db: DbTarget,
  pool: PgPoolCounters,
  replica?: number,
): LivePool {
  return {
    dataSource,
    db,
    replica,
    usage: () => {
      const { totalCount, idleCount, waitingCount } = pool;
      if (totalCount === undefined || idleCount === undefined || waitingCount === undefined)
        return undefined;
      return {
        used: totalCount - idleCount,
        idle: idleCount,
        pending: waitingCount,
        max: pool.options?.max,
      };
    },
  };
}

function mysqlPool(dataSource: string, db: DbTarget, pool: MysqlPoolCounters): LivePool {
  return {
    dataSource,
    db,
    usage: () => {
      const all = pool._allConnections?.length;
      const free = pool._freeConnections?.length;
      if (all === undefined || free === undefined) return undefined;
      const pending = pool._connectionQueue?.length ?? 0;
      return { used: all - free, idle: free, pending, max: pool.config?.connectionLimit };
    },
  };
}
