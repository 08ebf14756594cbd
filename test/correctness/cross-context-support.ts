import type { DataSource, QueryRunner } from 'typeorm';

/** A promise with its resolve function, for handing a step from one unit to another. */
export function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

/** Idle connections of the data source's pool right now. */
export function idle(dataSource: DataSource): number {
  const driver = dataSource.driver as unknown as {
    master?: { idleCount: number };
    pool?: { _freeConnections: { length: number } };
  };
  return driver.master?.idleCount ?? driver.pool!._freeConnections.length;
}

/**
 * Takes every idle connection of the pool through TypeORM's own runners, so that the next session
 * to connect makes a new connection (its socket then belongs to the async context that made it).
 */
export async function takeIdle(dataSource: DataSource): Promise<QueryRunner[]> {
  const runners: QueryRunner[] = [];
  while (idle(dataSource) > 0) {
    const runner = dataSource.createQueryRunner('master');
    await runner.connect();
    runners.push(runner);
  }
  return runners;
}
