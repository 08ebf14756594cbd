import { AsyncLocalStorage } from 'node:async_hooks';
import type { QueryRunner } from 'typeorm';
import type { ContextFrame } from '../context/context-frame.js';
import { SUSPENDED_IN } from '../session/bounded-manager.js';
import { isPostgres } from '../session/transaction-dialect.js';
import type { Lease, SharedConnection } from './shared-connection.js';

/** QueryRunner members TypeORM keeps read-only that the test runner drives. */
type Internals = QueryRunner & {
  isTransactionActive: boolean;
  isReleased: boolean;
  transactionDepth: number;
};

/** The runner whose statement (and its query events) runs in this async context. */
const sending = new AsyncLocalStorage<QueryRunner>();
/** Names the savepoints of subscribers' statements. */
let parts = 0;

/**
 * Points a plain TypeORM runner of the test body (`dataSource.query()`, `dataSource.manager`,
 * `getRepository()`, query builders, `dataSource.transaction()`) at the test's connection: its
 * statements see the test's data and run when no transaction of the app holds the connection;
 * its own transactions (`save()`, `dataSource.transaction()`) are savepoints of the test's.
 * Outside those, each statement runs in a savepoint of its own, as if it committed alone: one that
 * fails (an expected unique violation) leaves the test's transaction usable, as in autocommit.
 * A runner of a NOT_SUPPORTED block does the same in the turn of the transaction the block
 * suspends, nested in it (that transaction holds the one connection while it waits for the block).
 */
export function shareRunner(runner: QueryRunner, shared: SharedConnection): QueryRunner {
  const internals = runner as Internals;
  const { query, stream } = runner;
  let lease: Lease | undefined;
  /** A share of the connection for this runner's own statements, stream or transaction. */
  const lendOwn = () =>
    shared.lendToBody((runner as { [SUSPENDED_IN]?: ContextFrame })[SUSPENDED_IN]);
  const names: string[] = [];
  const send = <T>(call: () => Promise<T>) => shared.send(lease, call);
  const exec = (sql: string) =>
    send(() => sending.run(runner, () => query.call(runner, sql) as Promise<unknown>));
  /** A statement of a subscriber, sent from the query events of this runner's statement. */
  const inline = (sql: string, parameters?: unknown[]) =>
    shared.inline(() => query.call(runner, sql, parameters) as Promise<unknown>);

  internals.connect = () => Promise.resolve(shared.raw);
  internals.query = ((...args: Parameters<QueryRunner['query']>) => {
    // Sent from the query events of one of this runner's statements (a subscriber's): part of
    // that statement (queued behind it, or in a savepoint of its own, it would never run). Only
    // these: a statement the caller sends while another runs (the driver queues it) waits its turn.
    if (sending.getStore() === runner) return partOf(args);
    const call = () => sending.run(runner, () => query.apply(runner, args) as Promise<unknown>);
    return lease ? send(call) : alone(shared, lendOwn, call);
  }) as QueryRunner['query'];
  /**
   * A subscriber's statement. On PostgreSQL, when the statement it is part of runs alone (as if
   * in autocommit), in a savepoint of its own: its failure leaves that statement standing.
   */
  const partOf = async (args: Parameters<QueryRunner['query']>): Promise<unknown> => {
    const run = () => shared.inline(() => query.apply(runner, args) as Promise<unknown>);
    if (lease || !isPostgres(shared.type)) return run();
    const name = `ntc_part_${++parts}`;
    await inline(`SAVEPOINT ${name}`);
    try {
      const result = await run();
      await inline(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (error) {
      await inline(`ROLLBACK TO SAVEPOINT ${name}`).catch(() => undefined);
      throw error;
    }
  };
  // A stream outside the runner's transactions takes the connection like a statement (at most
  // acquireTimeout: plain TypeORM in a unit waits for that unit), and holds it until it ends.
  internals.stream = async (...args) => {
    if (lease) return send(() => stream.apply(runner, args));
    const own = await lendOwn();
    try {
      const opened = await shared.send(own, () => stream.apply(runner, args));
      let held = true;
      const free = () => {
        if (held) own.release();
        held = false;
      };
      for (const event of ['end', 'close', 'error']) opened.once(event, free);
      return opened;
    } catch (error) {
      own.release();
      throw error;
    }
  };
  internals.startTransaction = async () => {
    lease ??= await lendOwn();
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
async function alone<T>(
  shared: SharedConnection,
  lendOwn: () => Promise<Lease>,
  call: () => Promise<T>,
): Promise<T> {
  const own = await lendOwn();
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
