import type { DataSource } from 'typeorm';
import { contextStorage } from '../context/context-storage.js';
import { isMysql, isPostgres } from './transaction-dialect.js';

/** A TypeORM driver's own asks for a pooled connection (PostgreSQL, MySQL/MariaDB). */
interface AskingDriver {
  obtainMasterConnection?: () => Promise<unknown>;
  obtainSlaveConnection?: () => Promise<unknown>;
}

/** What a TypeORM PostgreSQL driver's ask resolves to: the client and pg-pool's `release`. */
type PgTaken = [client: unknown, release: (error?: Error) => void];

/** A mysql2 pooled connection, as far as giving it back goes. */
interface MysqlTaken {
  release(): void;
}

/** Marks a mysql2 connection whose `release` runs outside the library's context. */
const DETACHED = Symbol('nestjs-typeorm-context.detachedRelease');

/**
 * Makes the connections TypeORM's own runners take (plain TypeORM inside a unit with
 * `plainTypeorm` 'warn' or 'off', the plain manager of a NOT_SUPPORTED block) be asked for and
 * given back outside the library's context, as sessions' are (see `pooled-connection.ts`): a
 * connection the pool opens for such a query inside a request would keep that request's context
 * for its whole life (its idle errors ran in it), and pg-pool's idle timer, started on release,
 * kept it until it fired. Own properties of this data source's driver; TypeORM's classes are left
 * alone.
 */
export function detachPlainConnects(dataSource: DataSource): void {
  const type = dataSource.options.type;
  const postgres = isPostgres(type);
  if (!postgres && !isMysql(type)) return;
  const driver = dataSource.driver as unknown as AskingDriver;
  for (const method of ['obtainMasterConnection', 'obtainSlaveConnection'] as const) {
    const ask = driver[method];
    if (typeof ask !== 'function' || Object.hasOwn(driver, method)) continue;
    driver[method] = function (this: AskingDriver): Promise<unknown> {
      const asked = contextStorage.exit(() => ask.call(this));
      return postgres
        ? asked.then((taken) => detachPgRelease(taken as PgTaken))
        : asked.then((taken) => detachMysqlRelease(taken as MysqlTaken));
    };
  }
}

/** pg's `[client, release]`, its `release` run outside the library's context. */
function detachPgRelease([client, release]: PgTaken): PgTaken {
  return [client, (error?: Error) => contextStorage.exit(release, error)];
}

/**
 * The mysql2 connection, its `release` run outside the library's context from now on (an own
 * property, once per connection): mysql2 hands a released connection to the next ask in the
 * releasing code's context.
 */
function detachMysqlRelease(connection: MysqlTaken): MysqlTaken {
  const marked = connection as MysqlTaken & { [DETACHED]?: true };
  if (marked[DETACHED]) return connection;
  const release = connection.release;
  marked[DETACHED] = true;
  connection.release = function (this: MysqlTaken): void {
    contextStorage.exit(() => release.call(this));
  };
  return connection;
}
