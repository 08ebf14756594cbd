import type { EntityManager, QueryRunner } from 'typeorm';
import type { LazySession } from './lazy-session.js';
import type { QueryArgs, StreamArgs } from './session-connection.js';

/** A callback of `manager.transaction()`. */
type TransactionCallback = (manager: EntityManager) => Promise<unknown>;

/**
 * Points a session's QueryRunner and EntityManager at the session: statements and streams take
 * turns on its lanes, `manager.transaction()` is a savepoint block, `release()` ends the session,
 * and the runner always reports an active transaction, so TypeORM's `save()` and friends join it
 * instead of beginning their own. Only this instance is changed, never a TypeORM prototype.
 * `startTransaction()` / `commitTransaction()` / `rollbackTransaction()` called on the runner
 * directly open and end savepoints in the caller's block (at the top, they commit and roll back
 * the session's transaction).
 */
export function installRunner(session: LazySession, runner: QueryRunner): void {
  (runner as { isTransactionActive: boolean }).isTransactionActive = true;
  runner.query = ((...args: QueryArgs) => session.query(args)) as QueryRunner['query'];
  runner.stream = (...args: StreamArgs) => session.stream(args);
  runner.connect = () => session.connectRunner();
  runner.release = () => session.close('released');
  runner.startTransaction = () => session.openSavepoint();
  runner.commitTransaction = () => session.endSavepoint(true);
  runner.rollbackTransaction = () => session.endSavepoint(false);
  runner.manager.transaction = ((
    isolationOrCallback: string | TransactionCallback,
    callback?: TransactionCallback,
  ) =>
    session.nested(
      typeof isolationOrCallback === 'function' ? isolationOrCallback : callback!,
    )) as EntityManager['transaction'];
}
