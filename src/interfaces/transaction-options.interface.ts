import type { EntityManager } from 'typeorm';
import type { Propagation } from '../transactional/propagation.enum.js';

/** Isolation levels understood by PostgreSQL and MySQL/MariaDB. */
export type IsolationLevel =
  'READ UNCOMMITTED' | 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

/** Options of `@Transactional()`, `sessionContext.atomic()` and `sessionFactory.atomic()`. */
export interface TransactionOptions {
  /** Data source the block works on. Default: `'default'`. */
  dataSource?: string;
  /** How the block relates to the current transaction. Default: `Propagation.REQUIRED`. */
  propagation?: Propagation;
  /** Isolation level of a transaction this block begins. Default: the data source's. */
  isolationLevel?: IsolationLevel;
  /** Begin the transaction READ ONLY, so the database refuses writes. Default: `false`. */
  readOnly?: boolean;
  /**
   * With `readOnly: true` on a data source with replicas: `false` keeps the transaction on the
   * primary (it must see the latest commits). Default: `true` (a replica).
   */
  replica?: boolean;
  /** Milliseconds after which the block is cancelled and rolled back. Default: none. */
  timeout?: number;
  /** Re-runs on a serialization failure or deadlock, only when the block owns its transaction. Default: `0`. */
  retry?: number;
}

/** Options of `sessionFactory.open()`. */
export interface SessionOptions {
  /** Data source of the session. Default: `'default'`. */
  dataSource?: string;
  /** Isolation level of the transactions this session begins. Default: the data source's. */
  isolationLevel?: IsolationLevel;
  /** Begin the session's transactions READ ONLY. Default: `false`. */
  readOnly?: boolean;
  /** With `readOnly: true`: `false` keeps the session's transactions on the primary. Default: `true`. */
  replica?: boolean;
}

/** A block of work that receives the session's `EntityManager`. */
export type SessionCallback<T> = (manager: EntityManager) => Promise<T> | T;
