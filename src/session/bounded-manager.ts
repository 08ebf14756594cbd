import type { DataSource, EntityManager, QueryRunner, ReplicationMode } from 'typeorm';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { messages } from '../errors/messages.js';
import type { ConnectionWaits } from './connection-wait.js';
import type { TakenConnection } from './pooled-connection.js';
import type { SessionFrame } from './session-frames.js';
import { CREATE_RUNNER } from './session-connection.js';
import { losable } from './session-streams.js';
import { isConnectionLost, isSqlite, poolSize } from './transaction-dialect.js';

/**
 * Set by `boundedManager()` on the runners the testing kit creates for a NOT_SUPPORTED block: the
 * frame of the transaction the block suspends. The kit runs their statements in that
 * transaction's turn on the test's one connection (each in a savepoint of its own).
 */
export const SUSPENDED_IN = Symbol('nestjs-typeorm-context.suspendedIn');

/** QueryRunner members TypeORM keeps read-only that the bounded runner sets. */
type Internals = QueryRunner & { databaseConnection: unknown; isReleased: boolean };

/**
 * The plain, auto-committing manager of a NOT_SUPPORTED block: like `dataSource.manager`, except
 * that each of its query runners waits at most `ms` (acquireTimeout) for a pooled connection, and
 * fails with `ConnectionAcquireTimeoutError` then, and a statement that meets a lost connection
 * fails with `ConnectionLostError`, as a session's does. The transaction the block suspends keeps its
 * connection, so a plain wait could last forever (a pool of 1; MariaDB's pool has no timeout).
 * `suspended` is the frame of that transaction (see `SUSPENDED_IN`).
 */
export function boundedManager(
  dataSource: DataSource,
  name: string,
  ms: number,
  waits: ConnectionWaits,
  suspended: SessionFrame | undefined,
): EntityManager {
  const source = new Proxy(dataSource, {
    get(target, key) {
      if (key !== 'createQueryRunner') return Reflect.get(target, key) as unknown;
      // A test of the testing kit runs (it keeps the own one aside): its runners wait at most
      // acquireTimeout, and run in the turn of the transaction the block suspends (the one
      // connection it holds).
      if (Object.hasOwn(target, CREATE_RUNNER)) {
        return (mode?: ReplicationMode) =>
          Object.assign(target.createQueryRunner(mode), { [SUSPENDED_IN]: suspended });
      }
      const timedOut = () =>
        isSqlite(target.options.type)
          ? messages.sqliteNotSupportedTimeout(name, ms)
          : messages.notSupportedTimeout(name, ms, poolSize(target));
      return (mode?: ReplicationMode) =>
        bounded(target.createQueryRunner(mode), target, name, ms, waits, timedOut);
    },
  });
  return source.createEntityManager();
}

/**
 * Makes `runner` take its connection through the bounded wait (failing with `timedOut()`'s message
 * after `ms`), give it back on release, and fail a statement or stream whose connection is gone
 * with `ConnectionLostError`.
 */
export function bounded(
  runner: QueryRunner,
  dataSource: DataSource,
  name: string,
  ms: number,
  waits: ConnectionWaits,
  timedOut: () => string,
): QueryRunner {
  const internals = runner as Internals;
  let held: TakenConnection | undefined;
  let taking: Promise<unknown> | undefined;
  const take = async (): Promise<unknown> => {
    const pooled = await waits.take(dataSource, ms);
    if (pooled === undefined) throw new ConnectionAcquireTimeoutError(timedOut());
    held = pooled;
    internals.databaseConnection = pooled.raw;
    return pooled.raw;
  };
  internals.connect = () => {
    if (internals.databaseConnection) return Promise.resolve(internals.databaseConnection);
    taking ??= take().finally(() => (taking = undefined));
    return taking;
  };
  const query = runner.query;
  runner.query = function (this: QueryRunner, ...args: Parameters<QueryRunner['query']>) {
    return query.apply(this, args).catch((error: unknown) => {
      if (!isConnectionLost(dataSource.options.type, error)) throw error;
      // The driver may report it only after the release: the pool must not hand it out again.
      if (held) held.failure ??= error as Error;
      throw new ConnectionLostError(messages.notSupportedConnectionLost(name), { cause: error });
    });
  } as QueryRunner['query'];
  const stream = runner.stream;
  runner.stream = async function (this: QueryRunner, ...args: Parameters<QueryRunner['stream']>) {
    const opened = await stream.apply(this, args);
    // Ended by the library when the connection is lost: pg-query-stream would wait forever.
    const lose = losable(opened);
    // The driver's own error of the stream can come first (mysql2: the KILL's "Connection was
    // killed"): its reader gets the same ConnectionLostError as from the connection's event.
    const emit = opened.emit;
    opened.emit = function (this: typeof opened, event: string | symbol, ...rest: unknown[]) {
      const [error] = rest;
      if (
        event === 'error' &&
        !(error instanceof ConnectionLostError) &&
        isConnectionLost(dataSource.options.type, error)
      ) {
        if (held) held.failure ??= error as Error;
        rest[0] = new ConnectionLostError(messages.notSupportedConnectionLost(name), {
          cause: error,
        });
      }
      return emit.call(this, event, ...rest);
    } as typeof opened.emit;
    if (held) {
      held.onError = (error) =>
        lose(new ConnectionLostError(messages.notSupportedConnectionLost(name), { cause: error }));
    }
    return opened;
  } as QueryRunner['stream'];
  internals.release = async () => {
    internals.isReleased = true;
    await taking?.catch(() => undefined);
    const pooled = held;
    held = undefined;
    internals.databaseConnection = undefined;
    if (pooled === undefined) return;
    if (pooled.failure) await pooled.destroy(pooled.failure);
    else pooled.release();
  };
  return runner;
}
