import type { DataSource } from 'typeorm';
import { logger } from '../logger.js';
import { messages } from '../errors/messages.js';
import { ReplicaUnavailableError } from '../errors/replica-unavailable.error.js';
import { type ConnectionWaits, releaseLate, type WaitOwner } from './connection-wait.js';
import { connectPg, type PgPool, type PooledConnection } from './pooled-connection.js';
import { ReplicaStatus, type StatusClient } from './replica-status.js';
import type { FrameUnit } from './session-frames.js';
import { isConnectionLost, pgServesAtOnce } from './transaction-dialect.js';
import { formatLsn, POSITION_PROBE } from './wal-position.js';

/** pg-pool's counters, to know whether a connect waits for another connection to come back. */
interface CountedPool extends PgPool {
  idleCount: number;
  waitingCount: number;
  options?: { host?: unknown; port?: unknown };
}

/** How long, after every replica failed, read-only transactions go straight to the primary. */
const RETRY_AFTER_MS = 1000;
/** How often, at most, the primary fallback of reads whose token no replica replayed is logged. */
const BEHIND_LOG_MS = 60_000;

/**
 * What `take()` got: a replica's connection; `'down'` (no replica answers) or `'primary'` (every
 * replica lags, or none replayed the unit's token in time) when the transaction runs on the
 * primary instead; `'busy'` when a replica's pool stayed full.
 */
export type ReplicaTake = PooledConnection | 'down' | 'primary' | 'busy';

/** How read-only transactions choose among replicas (module options, resolved). */
export interface ReplicaRouting {
  /** `replicaDown: 'primary'`: no replica answering means the primary, not a failure. */
  fallBack: boolean;
  /** `maxReplicaLag`: a replica whose replay lags more (ms) gets no reads. */
  maxLag?: number;
  /** `consistency.wait`: how long a read waits for a replica to replay its unit's token (ms). */
  wait: number;
  /** `consistency.behind`: what such a read does after `wait`. */
  behind: 'primary' | 'fail';
  /** `consistency.refresh`: how long what a replica said of its replay is trusted (ms). */
  refresh: number;
}

/**
 * The replica pools of one PostgreSQL data source (TypeORM's `driver.slaves`, one pg pool per
 * `replication.slaves` entry), whether they answer, and how far each replayed. Replicas are tried
 * in turn. A read whose unit carries a consistency token (see `UnitOfWork.position()`) takes one
 * that replayed past it, and with `maxReplicaLag` a replica that lags more gets no reads until it
 * catches up (each logged once per episode); what a replica said is trusted for
 * `consistency.refresh` ms, then asked again on the connection a read takes from it. When none
 * accepts a connection the outage is logged once, and for a second read-only transactions go
 * straight to the primary (`replicaDown: 'primary'`) before a replica is tried again, or each
 * fails with `ReplicaUnavailableError` (`'fail'`). Owns nothing a session holds: a connection it
 * hands out is the session's to give back.
 */
export class ReplicaPools {
  private down = false;
  private retryAt = 0;
  private turn = 0;
  /** Whether the last read found every replica lagging (logged once per episode). */
  private allLagging = false;
  /** Reads sent to the primary since the last line about it, and when that line was logged. */
  private behindReads = 0;
  private behindLoggedAt = -BEHIND_LOG_MS;
  private statuses: readonly ReplicaStatus[] = [];
  /**
   * The data sources (this one included) whose primary is the same server: they share its WAL,
   * so a position committed through any of them is one reads of this one must see.
   */
  siblings: readonly string[];
  /**
   * Whether commits on the primary learn their WAL position (consistency tokens): undefined until
   * the primary was asked (`askPositions()`), false where it refused.
   */
  tokens: boolean | undefined;
  private asking?: Promise<void>;

  private constructor(
    private readonly name: string,
    private readonly dataSource: DataSource,
    private readonly routing: ReplicaRouting,
    private readonly waits: ConnectionWaits,
  ) {
    this.siblings = [name];
  }

  /**
   * TypeORM's pools of the replicas, read when used: a data source initialized after the app
   * (`manualInitialization`) has them only then.
   */
  private get pools(): readonly CountedPool[] {
    const pools = (this.dataSource.driver as unknown as { slaves?: CountedPool[] }).slaves ?? [];
    if (this.statuses.length !== pools.length) {
      this.statuses = pools.map((pool, index) => {
        const { host, port } = pool.options ?? {};
        const where = host === undefined ? '' : ` (${String(host)}:${String(port ?? 5432)})`;
        return new ReplicaStatus(`replica ${index + 1}${where}`);
      });
    }
    return pools;
  }

  /** The replica pools of `dataSource` (TypeORM `replication`), which it may have only once initialized. */
  static of(
    name: string,
    dataSource: DataSource,
    routing: ReplicaRouting,
    waits: ConnectionWaits,
  ): ReplicaPools {
    return new ReplicaPools(name, dataSource, routing, waits);
  }

  /**
   * Asks the primary, once, on `client` (a connection of its pool taken for a transaction, before
   * its BEGIN), whether it can tell WAL positions the way commits ask. Where it answers with an
   * error (Aurora, a role denied the WAL functions, a standby configured as the primary) commits
   * stay a plain COMMIT and a warning says why; where the connection broke under the question it
   * is asked again at the next transaction. One round trip, once per data source and app.
   */
  askPositions(client: StatusClient): Promise<void> {
    return (this.asking ??= client.query(POSITION_PROBE).then(
      () => void (this.tokens = true),
      (error: unknown) => {
        this.asking = undefined;
        // The server answered with an error (a refusal, a standby as the primary): for good.
        // Only a question the connection broke under is asked again.
        const code = (error as { code?: unknown } | null)?.code;
        if (typeof code !== 'string' || isConnectionLost('postgres', error)) return;
        this.tokens = false;
        const reason = error instanceof Error ? error.message : String(error);
        logger.warn(messages.tokensUnavailable(this.name, reason));
      },
    ));
  }

  /**
   * The primary WAL position a read-only transaction of `unit` must find replayed: the furthest
   * it carries or committed through this data source or another on the same primary server.
   */
  needOf(unit: FrameUnit | undefined): bigint | undefined {
    if (unit === undefined) return undefined;
    let need: bigint | undefined;
    for (const name of this.siblings) {
      const position = unit.position(name);
      if (position !== undefined && (need === undefined || position > need)) need = position;
    }
    return need;
  }

  /**
   * A connection of a replica that replayed the primary up to `need` (when the unit carries a
   * token) and does not lag beyond `maxReplicaLag`: at once when its pool has room, else within
   * `ms` (`'busy'` on timeout, or once `owner` stopped waiting). `'down'` or `'primary'` when the
   * transaction runs on the primary.
   */
  async take(ms: number, need?: bigint, owner?: WaitOwner): Promise<ReplicaTake> {
    if (this.down && this.routing.fallBack && Date.now() < this.retryAt) return 'down';
    if (this.pools.length === 0) return 'down'; // `replication` without slaves: the primary
    if (need === undefined && this.routing.maxLag === undefined) {
      return this.pass(ms, undefined, false, owner) as Promise<ReplicaTake>; // never 'behind'
    }
    const deadline = Date.now() + (need === undefined ? 0 : this.routing.wait);
    for (;;) {
      const taken = await this.pass(ms, need, true, owner);
      if (taken !== 'behind') return taken;
      if (owner?.waitStopped) return 'busy'; // the session ended: it waits for nothing
      const left = deadline - Date.now();
      if (left <= 0) return this.behind(need!);
      // What the replicas said is trusted for `refresh` ms: they are asked again after it.
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.routing.refresh, left)));
    }
  }

  /**
   * One round over the replicas, each asked once at most. With `checked`, a replica is taken only
   * if it replayed past `need` and does not lag (it is asked first when what it said is stale);
   * `'behind'` when one answered but none replayed `need` yet.
   */
  private async pass(
    ms: number,
    need?: bigint,
    checked = false,
    owner?: WaitOwner,
  ): Promise<ReplicaTake | 'behind'> {
    let failure: unknown;
    let answered = false;
    let behind = false;
    const now = Date.now();
    const pools = this.pools;
    // Each replica once, from the next one's turn on (concurrent passes each start one further).
    const start = this.turn++;
    for (let tried = 0; tried < pools.length; tried++) {
      const index = (start + tried) % pools.length;
      const status = this.statuses[index]!;
      const known = !checked || !status.stale(now, this.routing.refresh);
      if (checked && known && !this.fits(status, need)) {
        answered = true;
        behind ||= !status.lagging;
        continue;
      }
      let pooled: PooledConnection | undefined;
      try {
        const pool = pools[index]!;
        const connecting = connectPg(pool);
        pooled = pgServesAtOnce(pool)
          ? await connecting
          : await this.waits.within(connecting, ms, releaseLate, owner);
        if (pooled === undefined) return 'busy';
        if (pooled.failure !== undefined) throw pooled.failure;
        if (!known) {
          await status.refresh(pooled.raw as unknown as StatusClient);
          this.noteLag(status);
        }
      } catch (error) {
        failure = error;
        await pooled?.destroy(error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      answered = true;
      if (!checked || this.fits(status, need)) {
        this.up();
        this.allLagging = false;
        return pooled;
      }
      behind ||= !status.lagging;
      pooled.release();
    }
    if (!answered) {
      this.outage(failure);
      if (this.routing.fallBack) return 'down';
      throw new ReplicaUnavailableError(messages.replicaUnavailable(this.name, this.pools.length), {
        cause: failure,
      });
    }
    this.up();
    return behind ? 'behind' : this.lagging();
  }

  /** Whether a read that must see `need` may run on the replica that said `status`. */
  private fits(status: ReplicaStatus, need: bigint | undefined): boolean {
    return !status.lagging && (need === undefined || status.position >= need);
  }

  /** Notes whether the replica that said `status` lags beyond `maxReplicaLag` (logged as it changes). */
  private noteLag(status: ReplicaStatus): void {
    const max = this.routing.maxLag;
    const lagging = max !== undefined && status.lag > max;
    if (lagging === status.lagging) return;
    status.lagging = lagging;
    const lag = Math.round(status.lag);
    if (lagging) logger.warn(messages.replicaLagging(this.name, status.name, lag, max!));
    else logger.log(messages.replicaCaughtUp(this.name, status.name, lag));
  }

  /** Every replica that answered lags: the primary, or a failure with `replicaDown: 'fail'`. */
  private lagging(): 'primary' {
    const max = this.routing.maxLag!;
    if (!this.routing.fallBack) {
      throw new ReplicaUnavailableError(messages.replicasLagging(this.name, max, false));
    }
    if (!this.allLagging) {
      this.allLagging = true;
      logger.warn(messages.replicasLagging(this.name, max, true));
    }
    return 'primary';
  }

  /** No replica replayed `need` within `consistency.wait`: the primary, or a failure. */
  private behind(need: bigint): 'primary' {
    const wait = this.routing.wait;
    if (this.routing.behind === 'fail') {
      throw new ReplicaUnavailableError(messages.replicasBehind(this.name, formatLsn(need), wait));
    }
    this.behindReads++;
    const now = Date.now();
    if (now - this.behindLoggedAt >= BEHIND_LOG_MS) {
      logger.log(messages.readsOnPrimary(this.name, this.behindReads, wait));
      this.behindReads = 0;
      this.behindLoggedAt = now;
    }
    return 'primary';
  }

  private outage(cause: unknown): void {
    this.retryAt = Date.now() + RETRY_AFTER_MS;
    if (this.down) return;
    this.down = true;
    const reason = cause instanceof Error ? cause.message : String(cause);
    logger.warn(
      `No replica of data source '${this.name}' accepts connections (${reason}): read-only ` +
        `transactions ${this.routing.fallBack ? 'run on the primary' : 'fail with ReplicaUnavailableError'} ` +
        'until one does again.',
    );
  }

  private up(): void {
    if (!this.down) return;
    this.down = false;
    logger.log(`A replica of data source '${this.name}' accepts connections again.`);
  }
}
