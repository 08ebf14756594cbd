import type { DataSource } from 'typeorm';

/** Where a data source's statements go, named the way OpenTelemetry's database conventions name it. */
export interface DbTarget {
  /** `db.system.name`: `'postgresql'`, `'mysql'` or `'mariadb'` (the data source's `type`). */
  system: string;
  /** `db.namespace`: the database name, when the options name one. */
  namespace?: string;
  /** `server.address`: the host, when the options name one. */
  address?: string;
  /** `server.port`, when the options name one. */
  port?: number;
}

const SYSTEMS: Record<string, string> = {
  postgres: 'postgresql',
  mysql: 'mysql',
  mariadb: 'mariadb',
  'better-sqlite3': 'sqlite',
  sqljs: 'sqlite',
};

interface ConnectionOptions {
  url?: string;
  host?: string;
  port?: number | string;
  database?: string;
}

const targets = new WeakMap<DataSource, DbTarget>();

/** The data source's `DbTarget`, read once from its options (the primary's, with replication). */
export function dbTarget(dataSource: DataSource): DbTarget {
  let target = targets.get(dataSource);
  if (target === undefined) {
    target = readTarget(dataSource);
    targets.set(dataSource, target);
  }
  return target;
}

function readTarget(dataSource: DataSource): DbTarget {
  const options = dataSource.options as ConnectionOptions & {
    type: string;
    replication?: { master?: ConnectionOptions };
  };
  const primary = { ...options, ...options.replication?.master };
  const fromUrl = parseUrl(primary.url);
  const port = Number(primary.port ?? fromUrl.port);
  const target: DbTarget = { system: SYSTEMS[options.type] ?? options.type };
  const namespace = primary.database ?? fromUrl.database;
  const address = primary.host ?? fromUrl.host;
  if (namespace) target.namespace = namespace;
  if (address) target.address = address;
  if (Number.isInteger(port) && port > 0) target.port = port;
  return target;
}

function parseUrl(url: string | undefined): { host?: string; port?: string; database?: string } {
  if (url === undefined) return {};
  try {
    const parsed = new URL(url);
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
    return {
      host: parsed.hostname || undefined,
      port: parsed.port || undefined,
      database: database || undefined,
    };
  } catch {
    return {};
  }
}
