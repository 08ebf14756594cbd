import { channel, tracingChannel } from 'node:diagnostics_channel';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { CallbackError } from '../errors/callback.error.js';
import { CommitOutcomeUnknownError } from '../errors/commit-outcome-unknown.error.js';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { PartlyCommittedError } from '../errors/partly-committed.error.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { TransactionTimeoutError } from '../errors/transaction-timeout.error.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';
import type { Propagation } from '../transactional/propagation.enum.js';
import type { DbTarget } from './db-target.js';
import { attachUnit } from './message-unit.js';
import { inScope } from './scope.js';

/**
 * The module's tracing channels (`node:diagnostics_channel`), the one place that publishes on
 * them. The core calls in here at four points: a unit of work's first session and its end
 * (`UnitOfWork`), each transaction block (`TransactionRunner`, `OwnedTransactions`), each
 * connection a session takes (`ConnectionTaker`) and each savepoint (`SessionWork.nested()`).
 * Every caller checks `hasSubscribers` first: with nobody listening no message is built.
 */

/** Name of the tracing channel of units of work (requests, messages, GraphQL operations, jobs, `runInNewContext()`). */
export const UNIT_CHANNEL = 'nestjs-typeorm-context:unit';
/** Name of the tracing channel of transaction blocks (`@Transactional()`, `atomic()`). */
export const TRANSACTION_CHANNEL = 'nestjs-typeorm-context:transaction';
/** Name of the tracing channel of sessions taking a pooled connection. */
export const CONNECTION_CHANNEL = 'nestjs-typeorm-context:connection';
/** Name of the tracing channel of savepoints (NESTED blocks inside a transaction). */
export const SAVEPOINT_CHANNEL = 'nestjs-typeorm-context:savepoint';
/** Name of the tracing channel of the module's hooks (`onSessionStart`, `beforeCommit`) and transactions' callbacks. */
export const CALLBACK_CHANNEL = 'nestjs-typeorm-context:callback';
/** Name of the channel on which a traced connection is given back (its `ConnectionMessage`, `held` set). */
export const CONNECTION_RELEASE_CHANNEL = 'nestjs-typeorm-context:connection-release';

/** What opened a unit of work: an HTTP request, a microservice or WebSocket message, a GraphQL operation, a job or `runInNewContext()`. */
export type UnitKind = 'http' | 'rpc' | 'ws' | 'graphql' | 'job' | 'context';

/** The message of the `unit` channel (the same object from `start` to `asyncEnd`). */
export interface UnitMessage {
  /** What opened the unit. */
  kind: UnitKind;
  /** The handler that serves it (`UsersController.create()`), when an interceptor claimed it. */
  handler?: string;
  /** The route or pattern the handler serves (`POST /users/:id`, `{"cmd":"sum"}`), when the transport says. */
  route?: string;
  /** How the unit ended (set before `error`/`asyncEnd`). */
  outcome?: 'committed' | 'rolled back' | 'error';
  /** The error its end failed with (a failed COMMIT, a callback's error). */
  error?: unknown;
}

/** What a transaction block did with its data source's transaction. */
export type TransactionMode = 'begin' | 'join' | 'savepoint' | 'none';

/** How a transaction block ended. */
export type TransactionOutcome =
  | 'committed'
  | 'rolled back'
  | 'commit outcome unknown'
  | 'joined'
  | 'rollback-only'
  | 'released'
  | 'rolled back to savepoint'
  | 'completed'
  | 'failed';

/** Why a transaction rolled back, read from the error it failed with. */
export type RollbackReason =
  'error' | 'rollback-only' | 'server-aborted' | 'connection-lost' | 'timeout' | 'partly-committed';

/** The message of the `transaction` channel (one per block, one per attempt of a retried one). */
export interface TransactionMessage {
  /** The data source's name. */
  dataSource: string;
  /** Its database system, name, host and port. */
  db: DbTarget;
  /** The block's propagation. */
  propagation: Propagation;
  /** What the block did: began a transaction, joined one, opened a savepoint, or ran without one. */
  mode: TransactionMode;
  /** Who runs the block (`UsersService.register()`), when known. */
  label?: string;
  /** The isolation level the transaction begins with (`begin` only). */
  isolationLevel?: IsolationLevel;
  /** Whether it begins READ ONLY (`begin` only). */
  readOnly?: boolean;
  /** Whether it asked for a replica (`begin` only; the `connection` channel says where it went). */
  replica?: boolean;
  /** The attempt, from 1 (above 1 only for a block re-run by `retry`). */
  attempt: number;
  /** How the block ended (set before `error`/`asyncEnd`). */
  outcome?: TransactionOutcome;
  /** Why it rolled back, when it failed. */
  reason?: RollbackReason;
  /** The error the block rejected with (set by the channel). */
  error?: unknown;
  /** What the block resolved with (set by the channel). */
  result?: unknown;
}

/** The message of the `connection` channel: one session taking a connection. */
export interface ConnectionMessage {
  /** The data source's name. */
  dataSource: string;
  /** Its database system, name, host and port (the primary's). */
  db: DbTarget;
  /** The longest the session may wait (`acquireTimeout`, ms). */
  acquireTimeout: number;
  /** How long it waited, in ms (set before `error`/`asyncEnd`). */
  waited?: number;
  /** Whether it gave up after `acquireTimeout` (then `error` is a `ConnectionAcquireTimeoutError`). */
  timedOut?: boolean;
  /** Whether the session asked for a replica's connection (set once taken). */
  replica?: boolean;
  /** Whether the connection is a replica's (set once taken). */
  onReplica?: boolean;
  /** How long the session held it, in ms (set when it is given back, on the release channel). */
  held?: number;
  /** The error taking it failed with (set by the channel). */
  error?: unknown;
}

/** The message of the `savepoint` channel: one NESTED block inside a transaction. */
export interface SavepointMessage {
  /** The data source's name. */
  dataSource: string;
  /** Its database system, name, host and port. */
  db: DbTarget;
  /** The savepoint's name (`typeorm_1`), set once it is open. */
  savepoint?: string;
  /** How it ended (set before `error`/`asyncEnd`). */
  outcome?: 'released' | 'rolled back';
  /** The error the block rejected with (set by the channel). */
  error?: unknown;
}

/** Which hook or callback a `callback` channel message is about. */
export type CallbackName =
  'onSessionStart' | 'beforeCommit' | 'afterCommit' | 'afterRollback' | 'afterCompletion';

/** The message of the `callback` channel: one module hook or after-completion callback run. */
export interface CallbackMessage {
  /** The hook or callback. */
  name: CallbackName;
  /** The data source whose transaction it belongs to (the module hooks only). */
  dataSource?: string;
  /** The error it failed with (set by the channel). */
  error?: unknown;
  /** What it returned (set by the channel). */
  result?: unknown;
}

/** The tracing channel of units of work. */
export const unitChannel = tracingChannel<unknown, UnitMessage>(UNIT_CHANNEL);
/** The tracing channel of transaction blocks. */
export const transactionChannel = tracingChannel<unknown, TransactionMessage>(TRANSACTION_CHANNEL);
/** The tracing channel of connection takes. */
export const connectionChannel = tracingChannel<unknown, ConnectionMessage>(CONNECTION_CHANNEL);
/** The tracing channel of savepoints. */
export const savepointChannel = tracingChannel<unknown, SavepointMessage>(SAVEPOINT_CHANNEL);
/** The tracing channel of hooks and callbacks. */
export const callbackChannel = tracingChannel<unknown, CallbackMessage>(CALLBACK_CHANNEL);
/** The channel of traced connections given back. */
export const connectionReleaseChannel = channel(CONNECTION_RELEASE_CHANNEL);

/** Publishes `start` of a unit (at its first session), `unit` attached to the message first. */
export function startUnit(
  kind: UnitKind,
  handler: string | undefined,
  route: string | undefined,
  unit: object,
): UnitMessage {
  const message: UnitMessage = handler === undefined ? { kind } : { kind, handler };
  if (route !== undefined) message.route = route;
  attachUnit(message, unit);
  unitChannel.start.publish(message);
  return message;
}

/** Publishes the end of a traced unit once `ending` settles; returns what `ending` returns. */
export function endUnit(
  message: UnitMessage,
  ending: Promise<void>,
  commit: boolean,
): Promise<void> {
  return ending.then(
    () => {
      message.outcome = commit ? 'committed' : 'rolled back';
      unitChannel.asyncStart.publish(message);
      unitChannel.asyncEnd.publish(message);
    },
    (error: unknown) => {
      message.outcome = 'error';
      message.error = error;
      unitChannel.error.publish(message);
      unitChannel.asyncStart.publish(message);
      unitChannel.asyncEnd.publish(message);
      throw error;
    },
  );
}

/** Why a transaction that failed with `error` rolled back. */
export function rollbackReason(error: unknown): RollbackReason {
  if (error instanceof RollbackOnlyError) return 'rollback-only';
  if (error instanceof TransactionAbortedError) return 'server-aborted';
  if (error instanceof ConnectionLostError) return 'connection-lost';
  if (error instanceof TransactionTimeoutError) return 'timeout';
  if (error instanceof PartlyCommittedError) return 'partly-committed';
  return 'error';
}

const OUTCOMES: Record<TransactionMode, [TransactionOutcome, TransactionOutcome]> = {
  begin: ['committed', 'rolled back'],
  join: ['joined', 'rollback-only'],
  savepoint: ['released', 'rolled back to savepoint'],
  none: ['completed', 'failed'],
};

/** Runs `block` traced on the `transaction` channel, its outcome set before it settles. */
export function traceTransaction<T>(
  message: TransactionMessage,
  block: () => Promise<T>,
): Promise<T> {
  const [done, failed] = OUTCOMES[message.mode];
  return transactionChannel.tracePromise(
    () =>
      inScope(message, block).then(
        (result) => {
          message.outcome = done;
          return result;
        },
        (error: unknown) => {
          // An afterCommit callback's error (callbackErrors: 'throw') comes after the commit stood.
          if (message.mode === 'begin' && error instanceof CallbackError) {
            message.outcome = done;
            throw error;
          }
          message.outcome =
            message.mode === 'begin' && error instanceof CommitOutcomeUnknownError
              ? 'commit outcome unknown'
              : failed;
          message.reason = rollbackReason(error);
          throw error;
        },
      ),
    message,
  );
}

/** Takes a connection traced on the `connection` channel. */
export function traceConnection(
  message: ConnectionMessage,
  take: () => Promise<void>,
  onReplica: () => boolean,
): Promise<void> {
  const began = performance.now();
  return connectionChannel.tracePromise(
    () =>
      inScope(message, take).then(
        () => {
          message.waited = performance.now() - began;
          message.timedOut = false;
          message.onReplica = onReplica();
        },
        (error: unknown) => {
          message.waited = performance.now() - began;
          message.timedOut = error instanceof ConnectionAcquireTimeoutError;
          throw error;
        },
      ),
    message,
  );
}

/** Runs a hook or callback traced on the `callback` channel (check `hasSubscribers` first). */
export function traceCallback<T>(message: CallbackMessage, run: () => Promise<T>): Promise<T> {
  return callbackChannel.tracePromise(() => inScope(message, run), message);
}

/** Publishes that a traced connection, taken `since` (`performance.now()`), was given back. */
export function releaseConnection(message: ConnectionMessage, since: number): void {
  message.held = performance.now() - since;
  if (connectionReleaseChannel.hasSubscribers) connectionReleaseChannel.publish(message);
}

/** Runs a NESTED block traced on the `savepoint` channel. */
export function traceSavepoint<T>(message: SavepointMessage, block: () => Promise<T>): Promise<T> {
  return savepointChannel.tracePromise(
    () =>
      inScope(message, block).then(
        (result) => {
          message.outcome = 'released';
          return result;
        },
        (error: unknown) => {
          message.outcome = 'rolled back';
          throw error;
        },
      ),
    message,
  );
}
