import type { EntityManager } from 'typeorm';
import type { TransactionOptions } from './transaction-options.interface.js';

/** A hook called with a session's `EntityManager` and its data source name; its result is awaited and ignored. */
export type SessionHook = (session: EntityManager, dataSource: string) => unknown;

/** What `TypeOrmContextModule` does for GraphQL operations (`graphql` option). */
export interface GraphqlUnitOptions {
  /**
   * Commit an operation whose result has errors but also data (a partial result: one field
   * failed, others resolved), instead of rolling it back. A result without data (a request error,
   * or a non-null field's error that nulled it) is rolled back either way. Default: `false`.
   */
  commitPartial?: boolean;
}

/**
 * How consistency tokens travel and what a read that carries one does (`consistency` option). A
 * token names the primary's WAL position of the last commit its client made; a read-only
 * transaction of a unit that carries it runs on a replica only once that replica replayed it.
 */
export interface ConsistencyOptions {
  /**
   * The HTTP header a request's token is read from and the unit's new token is sent in, once a
   * commit moved it (e.g. `'x-consistency-token'`). Default: `false` (none).
   */
  header?: string | false;
  /**
   * The cookie a request's token is read from and that is set (`Path=/; HttpOnly;
   * SameSite=Lax`) once a commit moved it. Default: `false` (none).
   */
  cookie?: string | false;
  /**
   * Milliseconds a read that carries a token waits for a replica to replay it when none has yet.
   * Default: `0` (it does not wait).
   */
  wait?: number;
  /**
   * What such a read does after `wait`: `'primary'` runs it on the primary (counted, logged at
   * most once a minute), `'fail'` fails it with `ReplicaUnavailableError`. Default: `'primary'`.
   */
  behind?: 'primary' | 'fail';
  /**
   * Milliseconds what a replica said of its replay position and lag is trusted before it is
   * asked again. Default: `25`.
   */
  refresh?: number;
}

/** Options of `TypeOrmContextModule.forRoot()` / `forRootAsync()`. */
export interface TypeOrmContextModuleOptions {
  /** Names of the `@nestjs/typeorm` data sources that get context sessions. Default: `['default']`. */
  dataSources?: string[];
  /** Register `AutoCommitInterceptor` globally. Default: `true`. */
  autoCommit?: boolean;
  /** Open the context in a middleware, before guards run, for every HTTP route. Default: `true`. */
  middleware?: boolean;
  /**
   * Run every job of a BullMQ processor (`@nestjs/bullmq`, and `@Process()` methods of
   * `@nestjs/bull`) and every tick of a `@Cron()`, `@Interval()` or `@Timeout()` method
   * (`@nestjs/schedule`) in a unit of work of its own: committed when it resolves, rolled back
   * when it throws. Default: `true`.
   */
  jobs?: boolean;
  /** Runs right after a session begins a transaction, before its first query (e.g. `SET LOCAL`). Default: none. */
  onSessionStart?: SessionHook;
  /** Runs before every commit of a session, on every commit path. Default: none. */
  beforeCommit?: SessionHook;
  /**
   * Milliseconds a session waits for a pooled connection before it fails with
   * `ConnectionAcquireTimeoutError` instead of waiting forever on an exhausted pool. Default: `10_000`.
   */
  acquireTimeout?: number;
  /**
   * What a failing `afterCommit` / `afterRollback` / `afterCompletion` callback does: `'log'`
   * reports it (the caller sees the transaction's outcome, e.g. a 200), `'throw'` also fails the
   * caller with `CallbackError` once every callback ran (a 500: the commit stands, but the client
   * learns the side effect did not happen). Default: `'log'`.
   */
  callbackErrors?: 'log' | 'throw';
  /**
   * Give every connection of each data source's PostgreSQL pools (the primary's and each
   * replica's) a lifelong `'error'` listener, so that a connection the server drops in the instant
   * the pool hands it to plain TypeORM code (a repository outside any context, `dataSource.query()`)
   * cannot crash the process; the error is logged as a warning. The library's own sessions are
   * always guarded. Default: `false`.
   */
  guardPool?: boolean;
  /**
   * Where transactions of a data source with TypeORM `replication: { master, slaves }` run:
   * `'readOnly'` sends a transaction begun with `readOnly: true` to a replica (unless its unit of
   * work used the primary already, or the call says `replica: false`), everything else to the
   * primary; `'off'` keeps every transaction on the primary. PostgreSQL only. Default: `'readOnly'`
   * on PostgreSQL, `'off'` elsewhere.
   */
  readReplicas?: 'readOnly' | 'off';
  /**
   * What a read-only transaction does when no replica accepts a connection: `'primary'` runs it on
   * the primary (logged once per outage), `'fail'` fails it with `ReplicaUnavailableError`.
   * Default: `'primary'`.
   */
  replicaDown?: 'primary' | 'fail';
  /**
   * A replica whose replay lags more than this many milliseconds behind the primary gets no
   * read-only transactions until it catches up (logged once each way); with several replicas,
   * reads spread over the others, and with none left they run on the primary (or fail, with
   * `replicaDown: 'fail'`). Each replica is asked at most every `consistency.refresh` ms, on a
   * connection a read takes from it. Default: none (lag is not checked).
   */
  maxReplicaLag?: number;
  /**
   * Read-your-writes across units of work on replicas, with consistency tokens (see
   * `ConsistencyOptions` and `sessionContext.consistencyToken()`). Default: tokens are kept
   * and honoured, but not sent to or read from HTTP clients.
   */
  consistency?: ConsistencyOptions;
  /**
   * What every transaction a block begins starts from (`@Transactional()`, `sessionContext.atomic()`
   * and `sessionFactory.atomic()` owning one): the block's own options win. A block that joins a
   * transaction, and the unit of work's own transaction, are not affected. Default: none.
   */
  defaultTransactionOptions?: DefaultTransactionOptions;
  /**
   * What a context-aware repository or `@InjectSession()` manager does when it runs SQL outside
   * any unit of work (a script, a cron method or queue processor without `@Transactional()`,
   * `onApplicationBootstrap`, an `afterCommit` callback): `'autocommit'` runs each statement on
   * its own, as plain TypeORM does; `'warn'` does so and logs a warning naming the call site,
   * once per call site; `'throw'` fails the call with `NoSessionContextError`, sending nothing.
   * A `NOT_SUPPORTED` block, `manager.transaction()` and the test body under the testing kit are
   * never warned about. Default: `'warn'`.
   */
  outsideUnit?: 'autocommit' | 'warn' | 'throw';
  /**
   * What plain TypeORM code does inside a unit of work: a repository from
   * `TypeOrmModule.forFeature()`, the data source's `manager`, `getRepository()`, `query()`,
   * `createQueryBuilder()` and `transaction()`. `'warn'` lets it run as plain TypeORM (on its own
   * connection, each statement committed on its own, outside the unit's transaction) and logs a
   * warning naming the call site, once per call site; `'join'` runs it in the unit's session (its
   * transaction and connection; `transaction()` is a savepoint in it), as this library's own
   * repositories do; `'off'` leaves it plain, silently. Outside any unit of work, and in a
   * `NOT_SUPPORTED` block, plain TypeORM is always left alone. Default: `'warn'`.
   */
  plainTypeorm?: 'warn' | 'join' | 'off';
  /**
   * Instrumentations enabled while the app runs and disabled when it shuts down: e.g.
   * `new TypeOrmContextInstrumentation()` from `nestjs-typeorm-context/opentelemetry` (spans and
   * metrics, see docs/observability.md). Default: none.
   */
  instrumentations?: ModuleInstrumentation[];
  /**
   * One unit of work per GraphQL operation (`@nestjs/apollo` and `@nestjs/mercurius` over HTTP):
   * its root and field resolvers and DataLoader batches share it, and it ends when the response is
   * ready, committed when the result has no errors and rolled back when it has any (see
   * `GraphqlUnitOptions` for partial results). `false` leaves operations to the interceptor alone:
   * each root resolver then ends the unit when it returns. Default: `{ commitPartial: false }`.
   */
  graphql?: GraphqlUnitOptions | false;
  /**
   * The request id the module's log lines carry next to the unit's id (`[unit 12 req abc-1] …`):
   * a function of the HTTP request a unit of work serves (Express's `req`, Fastify's raw request),
   * called at most once per unit, the first time one of its lines is logged; a string or number
   * it returns is the id, anything else (or a throw) means none. `false`: no request ids.
   * Units without a request (jobs, messages) carry only their unit id, units opened inside a
   * request (`runInNewContext()`, REQUIRES_NEW blocks) that request's id. Default: the request's
   * own `id` (`request.id`: Fastify's, or the one `nestjs-pino`/`pino-http` gives it).
   */
  requestId?: ((request: any) => unknown) | false;
  /**
   * Log a warning for every transaction a block begins (`mode: 'begin'`) and every unit of work
   * (from its first session to its end) that took longer than this many milliseconds, with its
   * owner, outcome, attempt and duration (see docs/logging.md). `0` logs every one. Unset, the
   * module subscribes to no tracing channel. Default: none.
   */
  slowTransactionMs?: number;
}

/** The options `defaultTransactionOptions` may set. */
export type DefaultTransactionOptions = Pick<
  TransactionOptions,
  'isolationLevel' | 'readOnly' | 'timeout' | 'retry'
>;

/** What `instrumentations` accepts: anything that can be enabled and disabled (an OpenTelemetry `Instrumentation`). */
export interface ModuleInstrumentation {
  /** Starts it (called when the module initializes). */
  enable(): void;
  /** Stops it (called when the app shuts down). */
  disable(): void;
}
