import type { QueryRunner } from 'typeorm';
import type { Lease, SharedConnection } from './shared-connection.js';

/** QueryRunner members TypeORM keeps read-only that the test runner drives. */
type Internals = QueryRunner & {
  isTransactionActive: boolean;
  isReleased: boolean;
  transactionDepth: number;
};

/**
 * Points a plain TypeORM runner of the test body (`dataSource.query()`, `dataSource.manager`,
 * `getRepository()`, query builders, `dataSource.transaction()`) at the test's connection: its
 * statements see the test's data and run when no transaction of the app holds the connection;
 * its own transactions (`save()`, `dataSource.transaction()`) are savepoints of the test's.
 * Outside those, each statement runs in a savepoint of its own, as if it committed alone: one that
 * fails (an expected unique violation) leaves the test's transaction usable, as in autocommit.
 */
export function shareRunner(runner: QueryRunner, shared: SharedConnection): QueryRunner {
  const internals = runner as Internals;
  const { query, stream } = runner;
  let lease: Lease | undefined;
  const names: string[] = [];
  /** This runner's statements on the connection right now. */
  let running = 0;
  const counted =
    <T>(call: () => Promise<T>) =>
    async (): Promise<T> => {
      running += 1;
      try {
        return await call();
      } finally {
        running -= 1;
      }
    };
  const send = <T>(call: () => Promise<T>) => shared.send(lease, counted(call));
  const exec = (sql: string) => send(() => query.call(runner, sql) as Promise<unknown>);

  internals.connect = () => Promise.resolve(shared.raw);
  internals.query = ((...args: Parameters<QueryRunner['query']>) => {
    const call = () => query.apply(runner, args) as Promise<unknown>;
    // Sent while one of this runner's statements runs: a subscriber's, from that statement's
    // events, part of it (queued behind it, or in a savepoint of its own, it would never run).
    if (running > 0) return call();
    return lease ? send(call) : alone(shared, counted(call));
  }) as QueryRunner['query'];
  internals.stream = (...args) => send(() => stream.apply(runner, args));
  internals.startTransaction = async () => {
    lease ??= await shared.lendToBody();
    await runner.broadcaster.broadcast('BeforeTransactionStart');
    const name = names.length === 0 ? lease.name : `${lease.name}_${names.length}`;
    await exec(`SAVEPOINT ${name}`);
    names.push(name);
    internals.transactionDepth = names.length;
    internals.isTransactionActive = true;
    await runner.broadcaster.broadcast('AfterTransactionStart');
  };
  const end = async (commit: boolean) => {
    const name = names.at(-1);
    if (name === undefined) throw new Error('No transaction is started on this query runner');
    await runner.broadcaster.broadcast(
      commit ? 'BeforeTransactionCommit' : 'BeforeTransactionRollback',
    );
    await exec(commit ? `RELEASE SAVEPOINT ${name}` : `ROLLBACK TO SAVEPOINT ${name}`);
    names.pop();
    internals.transactionDepth = names.length;
    if (names.length === 0) {
      internals.isTransactionActive = false;
      lease?.release();
      lease = undefined;
    }
    await runner.broadcaster.broadcast(
      commit ? 'AfterTransactionCommit' : 'AfterTransactionRollback',
    );
  };
  internals.commitTransaction = () => end(true);
  internals.rollbackTransaction = () => end(false);
  internals.release = async () => {
    if (internals.isReleased) return;
    internals.isReleased = true;
    if (lease === undefined) return;
    await shared.exec(lease, `ROLLBACK TO SAVEPOINT ${lease.name}`).catch(() => undefined);
    lease.release();
    lease = undefined;
  };
  return runner;
}

/** A statement of the test body outside any transaction: in a savepoint of its own. */
async function alone<T>(shared: SharedConnection, call: () => Promise<T>): Promise<T> {
  const own = await shared.lendToBody();
  try {
    await shared.exec(own, own.statements.begin[0]!);
    let result: T;
    try {
      result = await shared.send(own, call);
    } catch (error) {
      await shared.exec(own, own.statements.rollback).catch(() => undefined);
      throw error;
    }
    await shared.exec(own, own.statements.commit);
    return result;
  } finally {
    own.release();
  }
}
