import { parseLsn } from './wal-position.js';

/** A pg client, as far as a replica is asked how far it replayed. */
export interface StatusClient {
  query(sql: string): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/** The position of a server that is not a standby: it has everything, every token is satisfied. */
export const EVERYTHING = 1n << 64n;

/**
 * How far a standby received and replayed the primary's WAL, and how long ago the primary
 * committed what it replayed last (PostgreSQL's usual measure of lag in time). `NULL` replay
 * position: not in recovery (a primary listed as a replica); `NULL` receive position: WAL
 * restored from an archive, not streamed.
 */
const STATUS =
  'SELECT pg_last_wal_replay_lsn()::text AS position, pg_last_wal_receive_lsn()::text AS received, ' +
  'COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000, 0) AS since';

/**
 * What one replica said of itself the last time it was asked (see `ReplicaPools`): asked on a
 * connection taken for a read-only transaction, at most once per `consistency.refresh` ms, and
 * only where a token or `maxReplicaLag` needs it.
 */
export class ReplicaStatus {
  /** The primary WAL position it replayed up to. */
  position = 0n;
  /** Milliseconds its replay is behind the primary (see `refresh()`). */
  lag = 0;
  /** When it was asked (`Date.now()`); 0: never. */
  at = 0;
  /** Whether it lags more than `maxReplicaLag`: no reads until it catches up. */
  lagging = false;

  constructor(
    /** How log lines name it: `replica 1 (127.0.0.1:5433)`. */
    readonly name: string,
  ) {}

  /** Whether what it said is older than `ttl` ms. */
  stale(now: number, ttl: number): boolean {
    return now - this.at >= ttl;
  }

  /** The WAL position it had received when it was asked. */
  private received = 0n;

  /**
   * Asks it, on `client` (a connection of its pool), how far it replayed, and works out its lag:
   * none while it replayed all it received (an idle primary is no lag); else the time since the
   * primary committed what it replayed last, but at most the time since it was asked before, when
   * it had replayed all it had received then (what waits now arrived since: a commit replayed a
   * moment late after a quiet minute is not a minute of lag).
   */
  async refresh(client: StatusClient): Promise<void> {
    const row = (await client.query(STATUS)).rows[0] ?? {};
    const now = Date.now();
    const position = row.position === null ? EVERYTHING : (parseLsn(row.position) ?? 0n);
    const received = parseLsn(row.received) ?? position;
    let lag = 0;
    if (received > position) {
      lag = Number(row.since) || 0;
      if (this.at > 0 && this.received <= position) lag = Math.min(lag, now - this.at);
    }
    this.position = position;
    this.received = received;
    this.lag = lag;
    this.at = now;
  }
}
