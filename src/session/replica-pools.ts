import type { DataSource } from 'typeorm';
import { logger } from '../logger.js';
import { messages } from '../errors/messages.js';
import { ReplicaUnavailableError } from '../errors/replica-unavailable.error.js';
import { type ConnectionWaits, releaseLate } from './connection-wait.js';
import { connectPg, type PgPool, type PooledConnection } from './pooled-connection.js';
import { pgServesAtOnce } from './transaction-dialect.js';

/** pg-pool's counters, to know whether a connect waits for another connection to come back. */
interface CountedPool extends PgPool {
  idleCount: number;
  waitingCount: number;
}

/** How long, after every replica failed, read-only transactions go straight to the primary. */
const RETRY_AFTER_MS = 1000;

/** What `take()` got: a replica's connection, or why not. */
export type ReplicaTake = PooledConnection | 'down' | 'busy';

/**
 * The replica pools of one PostgreSQL data source (TypeORM's `driver.slaves`, one pg pool per
 * `replication.slaves` entry), and whether they answer. Replicas are tried in turn; when none
 * accepts a connection the outage is logged once, and for a second read-only transactions go
 * straight to the primary (`replicaDown: 'primary'`) before a replica is tried again, or each
 * fails with `ReplicaUnavailableError` (`'fail'`). Owns nothing a session holds: a connection it
 * hands out is the session's to give back.
 */
export class ReplicaPools {
  private down = false;
  private retryAt = 0;
  private turn = 0;

  private constructor(
    private readonly name: string,
    private readonly pools: readonly CountedPool[],
    private readonly fallBack: boolean,
    private readonly waits: ConnectionWaits,
  ) {}

  /** The replica pools of `dataSource`, or undefined when it has none. */
  static of(
    name: string,
    dataSource: DataSource,
    fallBack: boolean,
    waits: ConnectionWaits,
  ): ReplicaPools | undefined {
    const slaves = (dataSource.driver as unknown as { slaves?: CountedPool[] }).slaves;
    if (!slaves || slaves.length === 0) return undefined;
    return new ReplicaPools(name, slaves, fallBack, waits);
  }

  /**
   * A connection of a replica: at once when its pool has room, else within `ms` (`'busy'` on
   * timeout). `'down'` when none answers and the transaction runs on the primary instead.
   */
  async take(ms: number): Promise<ReplicaTake> {
    if (this.down && this.fallBack && Date.now() < this.retryAt) return 'down';
    let failure: unknown;
    for (let tried = 0; tried < this.pools.length; tried++) {
      const pool = this.pools[this.turn++ % this.pools.length]!;
      try {
        const connecting = connectPg(pool);
        const pooled = pgServesAtOnce(pool)
          ? await connecting
          : await this.waits.within(connecting, ms, releaseLate);
        if (pooled === undefined) return 'busy';
        if (pooled.failure === undefined) {
          this.up();
          return pooled;
        }
        failure = pooled.failure;
        await pooled.destroy(pooled.failure);
      } catch (error) {
        failure = error;
      }
    }
    this.outage(failure);
    if (this.fallBack) return 'down';
    throw new ReplicaUnavailableError(messages.replicaUnavailable(this.name, this.pools.length), {
      cause: failure,
    });
  }

  private outage(cause: unknown): void {
    this.retryAt = Date.now() + RETRY_AFTER_MS;
    if (this.down) return;
    this.down = true;
    const reason = cause instanceof Error ? cause.message : String(cause);
    logger.warn(
      `No replica of data source '${this.name}' accepts connections (${reason}): read-only ` +
        `transactions ${this.fallBack ? 'run on the primary' : 'fail with ReplicaUnavailableError'} ` +
        'until one does again.',
    );
  }

  private up(): void {
    if (!this.down) return;
    this.down = false;
    logger.log(`A replica of data source '${this.name}' accepts connections again.`);
  }
}
