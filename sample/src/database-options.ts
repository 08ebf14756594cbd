import type { DataSourceOptions } from 'typeorm';

/**
 * TypeORM's connection options for the sample's database, from one string: a PostgreSQL URL, or
 * `sqlite::memory:` / `sqlite:<file>` for SQLite through better-sqlite3 (a file in WAL mode).
 */
export function databaseOptions(database: string): DataSourceOptions {
  if (!database.startsWith('sqlite:')) return { type: 'postgres', url: database, poolSize: 10 };
  const file = database.slice('sqlite:'.length);
  return { type: 'better-sqlite3', database: file, enableWAL: file !== ':memory:' };
}

/** Whether the sample runs on SQLite (no transaction ids, no statement timeout, one connection). */
export function onSqlite(database: string): boolean {
  return database.startsWith('sqlite:');
}

/**
 * SQL returning `{ txid }`: PostgreSQL's id of the current transaction. SQLite has no transaction
 * ids; its one connection runs one transaction at a time, so it answers what that is.
 */
export function transactionIdSql(type: string): string {
  return type === 'postgres'
    ? 'SELECT txid_current()::text AS txid'
    : "SELECT 'the one SQLite transaction' AS txid";
}
