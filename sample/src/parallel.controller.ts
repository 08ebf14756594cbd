import { Controller, Get, ParseIntPipe, Query } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from 'nestjs-typeorm-context';

const SLEEP = 'SELECT pg_backend_pid() AS pid, pg_sleep(0.2)';

/**
 * One query that keeps its connection 200 ms: pg_sleep on PostgreSQL; on SQLite (no sleep in SQL,
 * one connection for everything) a query, then 200 ms with the connection still held.
 */
async function sleepOn(manager: EntityManager): Promise<Array<{ pid: number }>> {
  if (manager.connection.options.type === 'postgres') return manager.query(SLEEP);
  const rows: Array<{ pid: number }> = await manager.query('SELECT 1 AS pid');
  await new Promise((resolve) => setTimeout(resolve, 200));
  return rows;
}

/** Runs `count` sleeps through `run` at once; reports the wall time and the backends used. */
async function timed(count: number, run: () => Promise<Array<{ pid: number }>>) {
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: count }, run));
  const pids = new Set(results.map(([row]) => row.pid));
  return { queries: count, wallMs: Date.now() - started, distinctBackendPids: pids.size };
}

@Controller('parallel')
export class ParallelController {
  constructor(
    private readonly sessionContext: SessionContext,
    private readonly sessionFactory: SessionFactory,
  ) {}

  /**
   * Independent sessions (one connection and transaction each) run really in parallel; the
   * request's one session queues the same queries on its one connection. On SQLite the database
   * has one connection: the independent sessions take turns (wall time ≈ n × 200 ms).
   */
  @Get()
  async compare(@Query('n', new ParseIntPipe({ optional: true })) n = 4) {
    const count = Math.min(Math.max(n, 1), 5);
    const independent = await timed(count, () =>
      this.sessionFactory.atomic((manager: EntityManager) => sleepOn(manager)),
    );
    const oneSession = await timed(count, () => sleepOn(this.sessionContext.session()));
    return { independentSessions: independent, requestSession: oneSession };
  }
}
