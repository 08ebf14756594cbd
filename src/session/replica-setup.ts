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
    found.set(name, ReplicaPools.of(name, dataSource, routing, waits));
  }
  // Data sources on one primary server share its WAL positions (see `ReplicaPools.siblings`).
  const servers = new Map<string, string[]>();
  for (const name of found.keys()) {
    const server = primaryServer(dataSources.get(name)!);
    servers.set(server, [...(servers.get(server) ?? []), name]);
  }
  for (const [name, pools] of found)
    pools.siblings = servers.get(primaryServer(dataSources.get(name)!))!;
  return found;
}

/** The primary server of a replicated data source, as its options name it: `host:port`. */
function primaryServer(dataSource: DataSource): string {
  const { replication } = dataSource.options as {
    replication?: { master?: { url?: string; host?: string; port?: number } };
  };
  const master = replication?.master ?? {};
  let { host, port } = master;
  if (master.url !== undefined) {
    try {
      const url = new URL(master.url);
      // TypeORM lets the URL's parts win over host and port.
      host = url.hostname || host;
      port = url.port === '' ? port : Number(url.port);
    } catch {
      return master.url; // not a URL pg reads alike: only the same string is the same server
    }
  }
  return `${host ?? 'localhost'}:${port ?? 5432}`;
}
