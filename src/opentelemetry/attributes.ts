import type { Attributes } from '@opentelemetry/api';
import type { DbTarget } from '../diagnostics/db-target.js';

/** Prefix of this library's own span and metric attributes. */
export const PREFIX = 'nestjs_typeorm_context';

/** The stable database attributes of a data source: `db.system.name`, `db.namespace`, `server.*`. */
export function dbAttributes(db: DbTarget): Attributes {
  const attributes: Attributes = { 'db.system.name': db.system };
  if (db.namespace !== undefined) attributes['db.namespace'] = db.namespace;
  if (db.address !== undefined) attributes['server.address'] = db.address;
  if (db.port !== undefined) attributes['server.port'] = db.port;
  return attributes;
}

/** `db.client.connection.pool.name` of a data source's pool: its name, `:replica` for a replica's. */
export function poolName(dataSource: string, replica: boolean): string {
  return replica ? `${dataSource}:replica` : dataSource;
}

/** `error.type` of an error: its class name, or `_OTHER`. */
export function errorType(error: unknown): string {
  const name = (error as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? name : '_OTHER';
}
