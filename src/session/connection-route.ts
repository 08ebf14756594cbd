import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';
import type { ConnectionLender } from './pooled-connection.js';
import type { ReplicaPools } from './replica-pools.js';
import type { FrameUnit } from './session-frames.js';

/** What a transaction asks for when it begins: its access mode, isolation and opt-out. */
export interface RouteRequest {
  readOnly?: boolean;
  /** `false`: stay on the primary even when read-only. */
  replica?: boolean;
  isolationLevel?: IsolationLevel;
}

/**
 * Where a transaction's connection comes from: the one place that decides it, at the lazy BEGIN
 * (when the connection is taken), so it costs nothing for a data source without replicas.
 *
 * 1. A running `TestTransaction` lends its connection: everything runs on the test's one
 *    connection to the primary, read-only transactions too (a replica cannot see the test's
 *    uncommitted rows).
 * 2. A replica, for a transaction begun `readOnly` when the data source has replicas
 *    (`readReplicas: 'readOnly'`), unless the call said `replica: false`, its isolation is
 *    SERIALIZABLE (a hot standby cannot run it), or its unit of work already used the primary of
 *    that data source (read-your-writes and monotonic reads: a unit never reads older data than
 *    it has seen or written; so do the `afterCommit` / `afterCompletion` callbacks of that unit,
 *    see `ContextFrame.routingUnit`). Which replica, and whether one is fit for the read (it
 *    replayed the unit's consistency token, it lags less than `maxReplicaLag`), `ReplicaPools`
 *    decides; if none answers or is fit, it falls back to the primary or fails.
 * 3. The primary; noted on the unit of work when the data source has replicas.
 */
export function replicaFor(
  replicas: ReplicaPools | undefined,
  lender: ConnectionLender | undefined,
  request: RouteRequest,
  unit: FrameUnit | undefined,
  dataSource: string,
): ReplicaPools | undefined {
  if (replicas === undefined || lender !== undefined) return undefined;
  if (request.readOnly !== true || request.replica === false) return undefined;
  if (request.isolationLevel === 'SERIALIZABLE') return undefined;
  return unit?.usedPrimary(dataSource) ? undefined : replicas;
}
