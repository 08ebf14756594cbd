import type {
  Counter,
  Histogram,
  Meter,
  ObservableResult,
  ObservableUpDownCounter,
} from '@opentelemetry/api';
import type {
  ConnectionMessage,
  TransactionMessage,
  UnitMessage,
} from '../diagnostics/channels.js';
import { livePools } from '../diagnostics/pools.js';
import { PREFIX, dbAttributes, poolName } from './attributes.js';

const POOL = 'db.client.connection.pool.name';

/**
 * The metrics: OpenTelemetry's connection-pool metrics (`db.client.connection.*`) for the pools of
 * running apps' data sources, and this library's counters of commits, rollbacks, retries and
 * replica fallbacks. Fed by `ChannelSpans` from the tracing channels; pool counts are read from
 * the pools when the SDK collects.
 */
export class ChannelMetrics {
  private readonly waitTime: Histogram;
  private readonly useTime: Histogram;
  private readonly timeouts: Counter;
  private readonly commits: Counter;
  private readonly rollbacks: Counter;
  private readonly retries: Counter;
  private readonly fallbacks: Counter;
  private readonly observed: Array<[ObservableUpDownCounter, (result: ObservableResult) => void]>;

  constructor(meter: Meter) {
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: BUCKETS } };
    this.waitTime = meter.createHistogram('db.client.connection.wait_time', {
      description: 'The time it took to obtain an open connection from the pool.',
      ...seconds,
    });
    this.useTime = meter.createHistogram('db.client.connection.use_time', {
      description: 'The time between borrowing a connection and returning it to the pool.',
      ...seconds,
    });
    this.timeouts = meter.createCounter('db.client.connection.timeouts', {
      description: 'The number of connection timeouts trying to obtain a connection from the pool.',
      unit: '{timeout}',
    });
    this.commits = meter.createCounter(`${PREFIX}.commits`, {
      description: 'Transactions committed: units of work, and blocks that began their own.',
      unit: '{transaction}',
    });
    this.rollbacks = meter.createCounter(`${PREFIX}.rollbacks`, {
      description: 'Transactions rolled back: units of work, and blocks that began their own.',
      unit: '{transaction}',
    });
    this.retries = meter.createCounter(`${PREFIX}.retries`, {
      description:
        'Attempts of a block re-run by `retry` after a serialization failure or deadlock.',
      unit: '{attempt}',
    });
    this.fallbacks = meter.createCounter(`${PREFIX}.replica_fallbacks`, {
      description: 'Sessions that asked for a replica and ran on the primary.',
      unit: '{session}',
    });
    const count = meter.createObservableUpDownCounter('db.client.connection.count', {
      description:
        'The number of connections that are currently in the state described by the state attribute.',
      unit: '{connection}',
    });
    const pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {
      description: 'The number of current pending requests for an open connection.',
      unit: '{request}',
    });
    const max = meter.createObservableUpDownCounter('db.client.connection.max', {
      description: 'The maximum number of open connections allowed.',
      unit: '{connection}',
    });
    this.observed = [
      [count, (result) => observePools(result, 'count')],
      [pending, (result) => observePools(result, 'pending')],
      [max, (result) => observePools(result, 'max')],
    ];
    for (const [instrument, callback] of this.observed) instrument.addCallback(callback);
  }

  /** A unit of work ended. */
  unitEnded(message: UnitMessage): void {
    const attributes = { [`${PREFIX}.scope`]: 'unit' };
    if (message.outcome === 'committed') this.commits.add(1, attributes);
    else this.rollbacks.add(1, attributes);
  }

  /** A transaction block started (counts retries). */
  transactionStarted(message: TransactionMessage): void {
    if (message.attempt > 1)
      this.retries.add(1, {
        ...dbAttributes(message.db),
        [`${PREFIX}.data_source`]: message.dataSource,
      });
  }

  /** A transaction block ended (counts those that began their own transaction). */
  transactionEnded(message: TransactionMessage): void {
    if (message.mode !== 'begin') return;
    const attributes = {
      ...dbAttributes(message.db),
      [`${PREFIX}.data_source`]: message.dataSource,
      [`${PREFIX}.scope`]: 'block',
    };
    if (message.outcome === 'committed') this.commits.add(1, attributes);
    else this.rollbacks.add(1, attributes);
  }

  /** A session's take of a connection ended. */
  connectionTaken(message: ConnectionMessage): void {
    const pool = {
      ...dbAttributes(message.db),
      [POOL]: poolName(message.dataSource, message.onReplica === true),
    };
    if (message.waited !== undefined) this.waitTime.record(message.waited / 1000, pool);
    if (message.timedOut) this.timeouts.add(1, pool);
    if (message.error === undefined && message.replica === true && message.onReplica === false)
      this.fallbacks.add(1, {
        ...dbAttributes(message.db),
        [`${PREFIX}.data_source`]: message.dataSource,
      });
  }

  /** A traced connection was given back. */
  connectionReleased(message: ConnectionMessage): void {
    if (message.held === undefined) return;
    const pool = poolName(message.dataSource, message.onReplica === true);
    this.useTime.record(message.held / 1000, { ...dbAttributes(message.db), [POOL]: pool });
  }

  /** Stops observing the pools. */
  close(): void {
    for (const [instrument, callback] of this.observed) instrument.removeCallback(callback);
  }
}

/** Histogram buckets for connection times (s), from 1 ms to 10 s. */
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Reports every live pool's numbers, summed per pool name (apps that share a data source name share one). */
function observePools(result: ObservableResult, what: 'count' | 'pending' | 'max'): void {
  const sums = new Map<
    string,
    {
      attributes: Record<string, string | number>;
      used: number;
      idle: number;
      pending: number;
      max: number;
    }
  >();
  for (const pool of livePools()) {
    const usage = pool.usage();
    if (usage === undefined) continue;
    const name = poolName(pool.dataSource, pool.replica !== undefined);
    const key = `${JSON.stringify(dbAttributes(pool.db))}\u0000${name}`;
    let sum = sums.get(key);
    if (sum === undefined) {
      const attributes = { ...dbAttributes(pool.db), [POOL]: name } as Record<
        string,
        string | number
      >;
      sums.set(key, (sum = { attributes, used: 0, idle: 0, pending: 0, max: 0 }));
    }
    sum.used += usage.used;
    sum.idle += usage.idle;
    sum.pending += usage.pending;
    sum.max += usage.max ?? 0;
  }
  for (const { attributes, used, idle, pending, max } of sums.values()) {
    if (what === 'count') {
      result.observe(used, { ...attributes, 'db.client.connection.state': 'used' });
      result.observe(idle, { ...attributes, 'db.client.connection.state': 'idle' });
    } else if (what === 'pending') result.observe(pending, attributes);
    else if (max > 0) result.observe(max, attributes);
  }
}
