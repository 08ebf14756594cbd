import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { CallSiteWarnings, captureStack } from '../context/call-site.js';
import { messages } from '../errors/messages.js';
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
export function installRunner(session: LazySession, wire: TransactionWire, app: object): void {
  const runner = wire.runner as unknown as SessionRunner;
  runner[SESSION] = { session, wire, app, savepoints: [] };
  (runner as { isTransactionActive: boolean }).isTransactionActive = true;
  runner.query = runnerQuery;
  runner.stream = runnerStream;
  runner.release = runnerRelease;
  runner.connect = runnerConnect;
  runner.startTransaction = runnerStart;
  runner.commitTransaction = runnerCommit;
  runner.rollbackTransaction = runnerRollback;
  runner.manager.transaction = managerTransaction;
  runner.manager.preload = sessionPreload as EntityManager['preload'];
}

/** Where a session's runner keeps what its methods act on. */
const SESSION = Symbol('nestjs-typeorm-context.sessionRunner');

/** What a session's runner methods act on (one object per session, the methods are shared). */
interface RunnerState {
  session: LazySession;
  wire: TransactionWire;
  app: object;
  /** Blocks opened by `startTransaction()` on the runner, innermost last. */
  savepoints: Block[];
}

/** A session's QueryRunner. */
type SessionRunner = QueryRunner & { [SESSION]: RunnerState };

// The runner's methods: one function each for every session (none made per session), acting on
// the session the runner they are called on belongs to.

function runnerQuery(this: SessionRunner, ...args: QueryArgs): Promise<any> {
  return this[SESSION].session.query(args);
}

function runnerStream(this: SessionRunner, ...args: StreamArgs): ReturnType<QueryRunner['stream']> {
  return this[SESSION].session.stream(args);
}

function runnerRelease(this: SessionRunner): Promise<void> {
  return this[SESSION].session.close('released');
}

function runnerConnect(this: SessionRunner): Promise<unknown> {
  const { session, wire } = this[SESSION];
  if (wire.held) return Promise.resolve(wire.driverConnection);
  // TypeORM's own query() asks for every statement the session sends, from inside the task
  // sending it: a connection lost meanwhile fails that statement, it never queues behind it.
  if (wire.sending) return Promise.reject(session.refusal() ?? wire.lostError());
  return session.inTransaction(async () => wire.driverConnection);
}

function runnerStart(this: SessionRunner): Promise<void> {
  const { session, wire, savepoints } = this[SESSION];
  return session.inTransaction(async (lane, block) => {
    savepoints.push(await wire.savepoints.open(lane, block));
  });
}

function runnerCommit(this: SessionRunner): Promise<void> {
  const { session, wire, savepoints } = this[SESSION];
  const block = savepoints.pop();
  if (block === undefined) return session.dueCallbacks.around(() => session.commit());
  return block.lane!.parent!.open.run(() => wire.savepoints.end(block, true));
}

function runnerRollback(this: SessionRunner): Promise<void> {
  const { session, wire, savepoints } = this[SESSION];
  const block = savepoints.pop();
  if (block === undefined) return session.dueCallbacks.around(() => session.rollback());
  return block.lane!.parent!.open.run(() => wire.savepoints.end(block, false));
}

/** `manager.transaction()` of a session's manager: a savepoint block of its transaction. */
const managerTransaction = function (
  this: EntityManager,
  isolationOrCallback: string | TransactionCallback,
  callback?: TransactionCallback,
) {
  const { session, app } = (this.queryRunner as SessionRunner)[SESSION];
  if (typeof isolationOrCallback === 'function') return session.nested(isolationOrCallback);
  warnIsolationIgnored(app, isolationOrCallback);
  return session.nested(callback!);
} as EntityManager['transaction'];

/**
 * TypeORM's `preload()` reads through the data source's own manager (`dataSource.manager`), not
 * the manager it is called on: a session's would read on another connection, outside its
 * transaction (missing the rows the unit wrote). A session's runs with the session's manager as
 * the data source's manager. One function for every session; the view is made per call (rare).
 */
function sessionPreload(
  this: EntityManager,
  ...args: Parameters<EntityManager['preload']>
): ReturnType<EntityManager['preload']> {
  // TypeORM 1.x names it `dataSource` (its `connection` getter is deprecated), 0.3 `connection`.
  const own = (this as { dataSource?: DataSource }).dataSource ?? this.connection;
  const source = Object.create(own, { manager: { value: this } }) as DataSource;
  const view = Object.create(this, {
    connection: { value: source },
    dataSource: { value: source },
  }) as EntityManager;
  return typeormPreload(this).apply(view, args);
}

/** TypeORM's own `preload()`: the first up the prototype chain of `manager` that is not ours. */
function typeormPreload(manager: EntityManager): EntityManager['preload'] {
  let proto = Object.getPrototypeOf(manager) as EntityManager;
  while (proto.preload === (sessionPreload as unknown)) proto = Object.getPrototypeOf(proto);
  return proto.preload;
}

/** Per app, call sites already warned that `transaction(isolationLevel, fn)` ignores the level. */
const warnedSites = new WeakMap<object, CallSiteWarnings>();

/**
 * `manager.transaction(isolationLevel, fn)` on a session (or plain TypeORM joined to one) is a
 * savepoint block of the session's transaction: the level cannot apply. Said once per call site.
 */
function warnIsolationIgnored(app: object, level: string): void {
  let warnings = warnedSites.get(app);
  if (warnings === undefined) warnedSites.set(app, (warnings = new CallSiteWarnings()));
  warnings.warn(
    captureStack(),
    (site) => messages.savepointIsolationIgnored(level, site),
    undefined,
    'an unknown call site',
  );
}
