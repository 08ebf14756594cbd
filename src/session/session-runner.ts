import type { EntityManager, QueryRunner } from 'typeorm';
import type { Block } from './block.js';
import type { LazySession } from './lazy-session.js';
import type { QueryArgs, StreamArgs } from './session-connection.js';
import type { TransactionWire } from './transaction-wire.js';

/** A callback of `manager.transaction()`. */
type TransactionCallback = (manager: EntityManager) => Promise<unknown>;

/**
 * Points a session's QueryRunner and EntityManager at the session: statements and streams take
 * turns on its lanes, `manager.transaction()` is a savepoint block, `release()` ends the session,
 * and the runner always reports an active transaction, so TypeORM's `save()` and friends join it
 * instead of beginning their own. Only this instance is changed, never a TypeORM prototype.
 *
 * `startTransaction()` / `commitTransaction()` / `rollbackTransaction()` called on the runner
 * directly open and end savepoints in the caller's block; with none open, they commit and roll
 * back the session's transaction. (Rollback-only marks and callbacks belong to the caller's
 * block there: only `manager.transaction()` and NESTED give a savepoint its own.)
 */
export function installRunner(session: LazySession, wire: TransactionWire): void {
  const runner = wire.runner;
  const savepoints: Block[] = [];
  (runner as { isTransactionActive: boolean }).isTransactionActive = true;
  runner.query = ((...args: QueryArgs) => session.query(args)) as QueryRunner['query'];
  runner.stream = (...args: StreamArgs) => session.stream(args);
  runner.release = () => session.close('released');
  runner.connect = () => {
    if (wire.held) return Promise.resolve(wire.driverConnection);
    // TypeORM's own query() asks for every statement the session sends, from inside the task
    // sending it: a connection lost meanwhile fails that statement, it never queues behind it.
    if (wire.sending) return Promise.reject(session.refusal() ?? wire.lostError());
    return session.inTransaction(async () => wire.driverConnection);
  };
  runner.startTransaction = () =>
    session.inTransaction(async (lane, block) => {
      savepoints.push(await wire.savepoints.open(lane, block));
    });
  runner.commitTransaction = () => {
    const block = savepoints.pop();
    if (block === undefined) return session.dueCallbacks.around(() => session.commit());
    return block.lane!.parent!.open.run(() => wire.savepoints.end(block, true));
  };
  runner.rollbackTransaction = () => {
    const block = savepoints.pop();
    if (block === undefined) return session.dueCallbacks.around(() => session.rollback());
    return block.lane!.parent!.open.run(() => wire.savepoints.end(block, false));
  };
  runner.manager.transaction = ((
    isolationOrCallback: string | TransactionCallback,
    callback?: TransactionCallback,
  ) =>
    session.nested(
      typeof isolationOrCallback === 'function' ? isolationOrCallback : callback!,
    )) as EntityManager['transaction'];
}
