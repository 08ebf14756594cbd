import type {
  IsolationLevel,
  SessionOptions,
  TransactionOptions,
} from './interfaces/transaction-options.interface.js';
import type {
  ConsistencyOptions,
  DefaultTransactionOptions,
  GraphqlUnitOptions,
  ModuleInstrumentation,
  TypeOrmContextModuleOptions,
} from './interfaces/typeorm-context-options.interface.js';
import { check, checkShape, fail } from './option-checks.js';
import { Propagation } from './transactional/propagation.enum.js';

/** Name of the data source used when none is given (the `@nestjs/typeorm` default). */
export const DEFAULT_DATA_SOURCE = 'default';

/** Milliseconds a session waits for a pooled connection when `acquireTimeout` is not set. */
export const DEFAULT_ACQUIRE_TIMEOUT = 10_000;

/** What the `requestId` option reads when the app sets none: the request's own `id`. */
export function defaultRequestId(request: unknown): unknown {
  return (request as { id?: unknown } | null | undefined)?.id;
}

/** Module options with every default applied. */
export type ResolvedModuleOptions = Required<
  Pick<
    TypeOrmContextModuleOptions,
    | 'dataSources'
    | 'autoCommit'
    | 'middleware'
    | 'jobs'
    | 'acquireTimeout'
    | 'callbackErrors'
    | 'guardPool'
    | 'replicaDown'
    | 'outsideUnit'
    | 'plainTypeorm'
    | 'requestId'
  >
> &
  Pick<
    TypeOrmContextModuleOptions,
    | 'onSessionStart'
    | 'beforeCommit'
    | 'readReplicas'
    | 'defaultTransactionOptions'
    | 'slowTransactionMs'
    | 'maxReplicaLag'
  > & {
    /** Consistency tokens: their options with defaults applied. */
    consistency: Required<ConsistencyOptions>;
    /** Instrumentations enabled while the app runs. */
    instrumentations: ModuleInstrumentation[];
    /** GraphQL operations: `false`, or their options with defaults applied. */
    graphql: false | Required<GraphqlUnitOptions>;
  };

/** Transaction options with every default applied. */
export type ResolvedTransactionOptions = Required<
  Pick<TransactionOptions, 'dataSource' | 'propagation' | 'retry'>
> &
  Pick<TransactionOptions, 'isolationLevel' | 'readOnly' | 'replica' | 'timeout'> & {
    /** Who begins the transaction, for messages (`UsersService.report()`). */
    label?: string;
  };

const ISOLATION_LEVELS: readonly IsolationLevel[] = [
  'READ UNCOMMITTED',
  'READ COMMITTED',
  'REPEATABLE READ',
  'SERIALIZABLE',
];
const PROPAGATIONS = Object.values(Propagation) as string[];

const isName = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
const isOptionalFunction = (value: unknown) => value === undefined || typeof value === 'function';
/** The longest a Node.js timer waits: a longer delay is clamped to 1 ms, so it fires at once. */
const MAX_TIMER_MS = 2_147_483_647;
/** What a millisecond option accepts, in its error message. */
const MILLISECONDS = (least: string): string =>
  `a number of milliseconds ${least} and at most ${MAX_TIMER_MS} (about 24.8 days: Node.js ` +
  'timers cannot wait longer, a longer delay fires at once)';

/**
 * Fails with `InvalidOptionError` unless `value` is a number of milliseconds a Node.js timer can
 * wait: above 0 (or from 0 with `allowZero`) and at most `MAX_TIMER_MS`. The message is built only
 * on failure (this runs on every `atomic()` call).
 */
export function checkMilliseconds(option: string, value: unknown, allowZero = false): void {
  const ok =
    typeof value === 'number' && // NaN fails the comparisons
    value >= 0 &&
    value <= MAX_TIMER_MS &&
    (allowZero || value !== 0);
  if (!ok) fail(option, value, MILLISECONDS(allowZero ? '0 or more' : 'greater than 0'));
}
const isOptionalBoolean = (value: unknown) => value === undefined || typeof value === 'boolean';

/** Validates module options and applies their defaults (the one place defaults live). */
export function resolveModuleOptions(
  options: TypeOrmContextModuleOptions = {},
): ResolvedModuleOptions {
  checkShape(options, MODULE_KEYS, 'TypeOrmContextModule options');
  const {
    dataSources = [DEFAULT_DATA_SOURCE],
    autoCommit = true,
    middleware = true,
    jobs = true,
    acquireTimeout = DEFAULT_ACQUIRE_TIMEOUT,
    callbackErrors = 'log',
    guardPool = false,
    replicaDown = 'primary',
    outsideUnit = 'warn',
    plainTypeorm = 'warn',
    requestId = defaultRequestId,
  } = options;
  const listOk =
    Array.isArray(dataSources) &&
    dataSources.length > 0 &&
    dataSources.every(isName) &&
    new Set(dataSources).size === dataSources.length;
  check(listOk, 'dataSources', dataSources, 'a non-empty array of distinct data source names');
  check(typeof autoCommit === 'boolean', 'autoCommit', autoCommit, 'true or false');
  check(typeof middleware === 'boolean', 'middleware', middleware, 'true or false');
  check(typeof jobs === 'boolean', 'jobs', jobs, 'true or false');
  check(typeof guardPool === 'boolean', 'guardPool', guardPool, 'true or false');
  check(
    isOptionalFunction(options.onSessionStart),
    'onSessionStart',
    options.onSessionStart,
    'a function (session, dataSource) => void | Promise<void>',
  );
  check(
    isOptionalFunction(options.beforeCommit),
    'beforeCommit',
    options.beforeCommit,
    'a function (session, dataSource) => void | Promise<void>',
  );
  checkMilliseconds('acquireTimeout', acquireTimeout);
  check(
    callbackErrors === 'log' || callbackErrors === 'throw',
    'callbackErrors',
    callbackErrors,
    "'log' or 'throw'",
  );
  check(
    options.readReplicas === undefined ||
      options.readReplicas === 'readOnly' ||
      options.readReplicas === 'off',
    'readReplicas',
    options.readReplicas,
    "'readOnly' or 'off' (there is no 'untilFirstWrite': a unit that read on a replica and then " +
      'writes would write on what an older snapshot showed; see docs/scaling.md)',
  );
  check(
    replicaDown === 'primary' || replicaDown === 'fail',
    'replicaDown',
    replicaDown,
    "'primary' or 'fail'",
  );
  const defaults = options.defaultTransactionOptions;
  if (defaults !== undefined) checkDefaults(defaults);
  check(
    outsideUnit === 'autocommit' || outsideUnit === 'warn' || outsideUnit === 'throw',
    'outsideUnit',
    outsideUnit,
    "'autocommit', 'warn' or 'throw'",
  );
  check(
    plainTypeorm === 'warn' || plainTypeorm === 'join' || plainTypeorm === 'off',
    'plainTypeorm',
    plainTypeorm,
    "'warn', 'join' or 'off'",
  );
  const { instrumentations = [] } = options;
  check(
    Array.isArray(instrumentations) && instrumentations.every(isInstrumentation),
    'instrumentations',
    instrumentations,
    'an array of objects with enable() and disable() (e.g. new TypeOrmContextInstrumentation() ' +
      "from 'nestjs-typeorm-context/opentelemetry')",
  );
  check(
    requestId === false || typeof requestId === 'function',
    'requestId',
    requestId,
    'a function (request) => string | number | undefined, or false',
  );
  const slow = options.slowTransactionMs;
  if (slow !== undefined) checkMilliseconds('slowTransactionMs', slow, true);
  const maxLag = options.maxReplicaLag;
  if (maxLag !== undefined) checkMilliseconds('maxReplicaLag', maxLag);
  return {
    maxReplicaLag: maxLag,
    consistency: resolveConsistencyOptions(options.consistency),
    instrumentations: [...instrumentations],
    defaultTransactionOptions: defaults === undefined ? undefined : { ...defaults },
    graphql: resolveGraphqlOptions(options.graphql),
    dataSources: [...dataSources],
    autoCommit,
    middleware,
    jobs,
    acquireTimeout,
    callbackErrors,
    guardPool,
    replicaDown,
    outsideUnit,
    plainTypeorm,
    requestId,
    slowTransactionMs: slow,
    readReplicas: options.readReplicas,
    onSessionStart: options.onSessionStart,
    beforeCommit: options.beforeCommit,
  };
}

/** Whether `value` can be enabled and disabled (see `instrumentations`). */
function isInstrumentation(value: unknown): boolean {
  const candidate = value as Partial<ModuleInstrumentation> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.enable === 'function' &&
    typeof candidate.disable === 'function'
  );
}

/** An HTTP header or cookie name (RFC 9110 token characters). */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Validates the `consistency` option and applies its defaults. */
function resolveConsistencyOptions(
  consistency: ConsistencyOptions = {},
): Required<ConsistencyOptions> {
  const shape = '{ header?, cookie?, wait?, behind?, refresh? }';
  check(typeof consistency === 'object' && consistency !== null, 'consistency', consistency, shape);
  checkShape(
    consistency,
    ['header', 'cookie', 'wait', 'behind', 'refresh'],
    'the consistency option',
  );
  const {
    header = false,
    cookie = false,
    wait = 0,
    behind = 'primary',
    refresh = 25,
  } = consistency;
  for (const [option, name] of [
    ['consistency.header', header],
    ['consistency.cookie', cookie],
  ] as const) {
    check(
      name === false || (typeof name === 'string' && HTTP_TOKEN.test(name)),
      option,
      name,
      "false, or a header or cookie name such as 'x-consistency-token' (letters, digits and !#$%&'*+-.^_`|~)",
    );
  }
  checkMilliseconds('consistency.wait', wait, true);
  check(
    behind === 'primary' || behind === 'fail',
    'consistency.behind',
    behind,
    "'primary' or 'fail'",
  );
  checkMilliseconds('consistency.refresh', refresh);
  return {
    header: header === false ? false : header.toLowerCase(),
    cookie,
    wait,
    behind,
    refresh,
  };
}

/** Validates the `graphql` option and applies its defaults. */
function resolveGraphqlOptions(
  graphql: GraphqlUnitOptions | false = {},
): false | Required<GraphqlUnitOptions> {
  if (graphql === false) return false;
  const expected = 'false or { commitPartial?: boolean }';
  check(typeof graphql === 'object' && graphql !== null, 'graphql', graphql, expected);
  checkShape(graphql, ['commitPartial'], 'the graphql option');
  const { commitPartial = false } = graphql;
  check(
    typeof commitPartial === 'boolean',
    'graphql.commitPartial',
    commitPartial,
    'true or false',
  );
  return { commitPartial };
}

const MODULE_KEYS = [
  'dataSources',
  'autoCommit',
  'middleware',
  'jobs',
  'onSessionStart',
  'beforeCommit',
  'acquireTimeout',
  'callbackErrors',
  'guardPool',
  'readReplicas',
  'replicaDown',
  'defaultTransactionOptions',
  'outsideUnit',
  'plainTypeorm',
  'instrumentations',
  'graphql',
  'requestId',
  'slowTransactionMs',
  'maxReplicaLag',
  'consistency',
  'isGlobal',
] as const;
const DEFAULT_KEYS = ['isolationLevel', 'readOnly', 'timeout', 'retry'] as const;
const SESSION_KEYS = ['dataSource', 'isolationLevel', 'readOnly', 'replica'] as const;
const TRANSACTION_KEYS = [...SESSION_KEYS, 'propagation', 'timeout', 'retry'] as const;
/** Propagations that never begin a transaction, so options shaping one cannot apply. */
const WITHOUT_TRANSACTION: readonly string[] = [
  Propagation.SUPPORTS,
  Propagation.NOT_SUPPORTED,
  Propagation.NEVER,
];

/** What `isolationLevel` accepts, built once: option checks run on every transaction. */
const ISOLATION_EXPECTED = `one of ${ISOLATION_LEVELS.map((l) => `'${l}'`).join(', ')}`;

function checkCommon(options: SessionOptions, known: readonly string[], what: string): void {
  checkShape(options, known, what);
  check(
    options.dataSource === undefined || isName(options.dataSource),
    'dataSource',
    options.dataSource,
    'a data source name',
  );
  check(
    options.isolationLevel === undefined || ISOLATION_LEVELS.includes(options.isolationLevel),
    'isolationLevel',
    options.isolationLevel,
    ISOLATION_EXPECTED,
  );
  check(isOptionalBoolean(options.readOnly), 'readOnly', options.readOnly, 'true or false');
  check(isOptionalBoolean(options.replica), 'replica', options.replica, 'true or false');
  check(
    options.replica !== true || options.readOnly === true,
    'replica',
    options.replica,
    'replica: true only with readOnly: true (a replica cannot write)',
  );
}

/** Validates `defaultTransactionOptions`: what a transaction option accepts, four keys only. */
function checkDefaults(defaults: DefaultTransactionOptions): void {
  checkCommon(defaults, DEFAULT_KEYS, 'defaultTransactionOptions');
  checkRetry(defaults.retry ?? 0);
  if (defaults.timeout !== undefined) checkMilliseconds('timeout', defaults.timeout);
}

/** Fails unless `retry` is a whole number of retries. */
function checkRetry(retry: number): void {
  check(
    Number.isInteger(retry) && retry >= 0,
    'retry',
    retry,
    'a whole number of retries, 0 or more',
  );
}

/**
 * `resolved` with what `defaults` sets and neither the block (`raw`, as given) nor its resolution
 * did: the options of a transaction the block begins.
 */
export function withDefaults(
  resolved: ResolvedTransactionOptions,
  raw: TransactionOptions | undefined,
  defaults: DefaultTransactionOptions,
): ResolvedTransactionOptions {
  return {
    ...resolved,
    isolationLevel: resolved.isolationLevel ?? defaults.isolationLevel,
    readOnly: resolved.readOnly ?? defaults.readOnly,
    timeout: resolved.timeout ?? defaults.timeout,
    retry: raw?.retry ?? defaults.retry ?? resolved.retry,
  };
}

/** Validates the options of `sessionFactory.open()`. */
export function checkSessionOptions(options: SessionOptions): void {
  checkCommon(options, SESSION_KEYS, 'session options');
}

/** Validates transaction options and applies their defaults. */
export function resolveTransactionOptions(
  options: TransactionOptions = {},
  propagation: Propagation = Propagation.REQUIRED,
): ResolvedTransactionOptions {
  checkCommon(options, TRANSACTION_KEYS, 'transaction options');
  const resolved = {
    dataSource: options.dataSource ?? DEFAULT_DATA_SOURCE,
    propagation: options.propagation ?? propagation,
    retry: options.retry ?? 0,
    isolationLevel: options.isolationLevel,
    readOnly: options.readOnly,
    replica: options.replica,
    timeout: options.timeout,
  };
  check(
    PROPAGATIONS.includes(resolved.propagation),
    'propagation',
    resolved.propagation,
    'a member of the Propagation enum',
  );
  checkRetry(resolved.retry);
  if (resolved.timeout !== undefined) checkMilliseconds('timeout', resolved.timeout);
  if (WITHOUT_TRANSACTION.includes(resolved.propagation)) {
    for (const key of ['isolationLevel', 'readOnly', 'replica', 'timeout', 'retry'] as const) {
      if (options[key] === undefined || (key === 'retry' && options.retry === 0)) continue;
      fail(
        `${key} with Propagation.${resolved.propagation}`,
        options[key],
        `no ${key}: Propagation.${resolved.propagation} never begins a transaction, so ${key} ` +
          'would be ignored. Use Propagation.REQUIRED or REQUIRES_NEW for a transaction it shapes',
      );
    }
  }
  return resolved;
}
