import type { DataSource } from 'typeorm';
import { logger } from '../logger.js';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { messages } from '../errors/messages.js';
import type { ResolvedModuleOptions } from '../typeorm-context.options.js';
import type { ConnectionWaits } from './connection-wait.js';
import { ReplicaPools } from './replica-pools.js';
import { isPostgres } from './transaction-dialect.js';

/**
 * The replica pools of each data source that has TypeORM `replication` and may use them
 * (`readReplicas`), checked at startup: routing is PostgreSQL-only, so a MySQL/MariaDB data source
 * with replication keeps every transaction on the primary (an error if `readReplicas: 'readOnly'`
 * was asked for explicitly, a warning otherwise).
 */
export function replicaPoolsOf(
  dataSources: ReadonlyMap<string, DataSource>,
  options: Pick<
    ResolvedModuleOptions,
    'readReplicas' | 'replicaDown' | 'maxReplicaLag' | 'consistency'
  >,
  waits: ConnectionWaits,
): Map<string, ReplicaPools> {
  const found = new Map<string, ReplicaPools>();
  if (options.readReplicas === 'off') return found;
  for (const [name, dataSource] of dataSources) {
    const { type, replication } = dataSource.options as { type: string; replication?: unknown };
    if (replication === undefined) continue;
    if (!isPostgres(type)) {
      const asked = options.readReplicas === 'readOnly';
      const message = messages.replicasUnsupported(name, type, asked);
      if (asked) throw new InvalidOptionError(message);
      logger.warn(message);
      continue;
    }
    const { wait, behind, refresh } = options.consistency;
    const routing = {
      fallBack: options.replicaDown === 'primary',
      maxLag: options.maxReplicaLag,
      wait,
      behind,
      refresh,
    };
    const pools = ReplicaPools.of(name, dataSource, routing, waits);
    if (pools) found.set(name, pools);
  }
  return found;
}
