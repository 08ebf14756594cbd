import * as realTimers from 'node:timers';
import type { INestApplicationContext } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import { SessionRuntime } from '../context/session-runtime.js';
import type { ConnectionWaits } from '../session/connection-wait.js';
import { messages } from '../errors/messages.js';
import { TestTransactionError } from '../errors/test-transaction.error.js';
import { checkMilliseconds } from '../typeorm-context.options.js';
import type { TakenConnection } from '../session/pooled-connection.js';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { CREATE_RUNNER } from '../session/session-connection.js';
import { writerOf } from '../session/sqlite-writer.js';
import { isConnectionLost, plainBegin } from '../session/transaction-dialect.js';
import { SharedConnection } from './shared-connection.js';
import { shareRunner } from './test-query-runner.js';

/** Options of `TestTransaction.start()`. */
export interface TestTransactionOptions {
  /** Data sources whose work runs in the test's transaction. Default: all of the module's. */
  dataSources?: string[];
  /** Milliseconds `rollback()` waits for work still running on the connection. Default: `2000`. */
  settleTimeout?: number;
}

/** What the test transaction holds for one data source. */
interface Held {
  name: string;
  dataSource: DataSource;
  pooled: TakenConnection;
  shared: SharedConnection;
}

type Replaceable = DataSource &
  Partial<Record<typeof CREATE_RUNNER, DataSource['createQueryRunner']>>;

/**
 * One test's transaction: from `start(app)` until `rollback()`, every session of `app` (HTTP
 * requests, messages, `runInNewContext()`, `@Transactional()`, `REQUIRES_NEW`, factory sessions,
 * repositories) and every query of the test body through the app's `DataSource` runs on one
 * connection per data source, inside one transaction, each unit of work as a SAVEPOINT of it.
 * `rollback()` undoes all of it. Nothing of TypeORM's is patched: only this app's `DataSource`
 * instances are changed (their `createQueryRunner`: between tests it only refuses the work of
 * ended tests, see `routeRunners()`).
 *
 * ```ts
 * beforeEach(async () => { tx = await TestTransaction.start(app); });
 * afterEach(() => tx.rollback());
 * ```
 */
export class TestTransaction implements AsyncDisposable {
  private ended = false;

  private constructor(
    private readonly runtime: SessionRuntime,
    private readonly held: Held[],
    private readonly settleTimeout: number,
  ) {}

  /** Takes a connection per data source, begins the test's transaction and routes the app's work into it. */
  static async start(
    app: INestApplicationContext,
    options: TestTransactionOptions = {},
  ): Promise<TestTransaction> {
    const settleTimeout = options.settleTimeout ?? 2000;
    checkMilliseconds('settleTimeout', settleTimeout, true);
    const runtime = app.get(SessionRuntime, { strict: false });
    if (runtime.lenders.active) throw new TestTransactionError(messages.testAlreadyRunning());
    const names = options.dataSources ?? runtime.dataSourceNames;
    const sources = names.map((name) => ({ name, dataSource: runtime.dataSource(name) }));
    const wait = { ms: runtime.options.acquireTimeout, waits: runtime.hooks.waits };
    const held: Held[] = [];
    try {
      for (const { name, dataSource } of sources) held.push(await hold(name, dataSource, wait));
    } catch (error) {
      await Promise.all(held.map(letGo));
      throw error;
    }
    runtime.lenders.begin(new Map(held.map(({ name, shared }) => [name, shared])));
    // From the app's first test on, each session notes the test it was born in (none before).
    runtime.hooks.testRun ??= () => runtime.lenders.current;
    for (const { name, dataSource, shared } of held)
      routeRunners(runtime, name, dataSource, shared);
    return new TestTransaction(runtime, held, settleTimeout);
  }

  /**
   * Rolls back everything since `start()` and gives the app its pool back. Work of the test
   * still running (a request it did not await) is rolled back too, and fails clearly: work that
   * began during the test never runs on the pool, its later statements fail.
   */
  async rollback(): Promise<void> {
    if (this.ended) throw new TestTransactionError(messages.testRolledBack());
    this.ended = true;
    const settled = await this.settle();
    this.runtime.lenders.end({ lend: () => Promise.reject(testEnded()) });
    for (const { name, dataSource, shared } of this.held) {
      shared.end(testEnded);
      routeRunners(this.runtime, name, dataSource); // until the next test: refuses the ended ones' work
    }
    await Promise.all(this.held.map(letGo));
    if (!settled) throw new TestTransactionError(messages.testStillRunning(this.settleTimeout));
  }

  /** `await using tx = await TestTransaction.start(app)` rolls back at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.ended ? Promise.resolve() : this.rollback();
  }

  /**
   * Waits until nothing runs on the test's connections; false if something still did at the
   * timeout. On Node's own timers (`node:timers`), which a test's fake timers do not replace.
   */
  private async settle(): Promise<boolean> {
    const busy = () => this.held.some(({ shared }) => shared.busy);
    if (!busy()) return true;
    let late = false;
    const timer = realTimers.setTimeout(() => (late = true), this.settleTimeout);
    try {
      while (busy()) {
        if (late) return false;
        await new Promise((resolve) => realTimers.setTimeout(resolve, 5));
      }
      return true;
    } finally {
      realTimers.clearTimeout(timer);
    }
  }
}

/**
 * Takes a pooled connection of `dataSource` and begins the test's transaction on it. A connection
 * the server dropped while it was idle (its goodbye read before or by `START TRANSACTION`) is
 * dropped and another taken, as sessions do: nothing had begun on it.
 */
async function hold(
  name: string,
  dataSource: DataSource,
  wait: { ms: number; waits: ConnectionWaits },
): Promise<Held> {
  const type = dataSource.options.type;
  for (let attempt = 1; ; attempt++) {
    const pooled = await wait.waits.take(dataSource, wait.ms);
    if (pooled === undefined) {
      throw new ConnectionAcquireTimeoutError(messages.testStartTimeout(name, wait.ms));
    }
    const own = (dataSource as { [OWN_CREATE]?: DataSource['createQueryRunner'] })[OWN_CREATE];
    const runner = (writerOf(dataSource)?.ownRunner(dataSource) ??
      (own ?? dataSource.createQueryRunner).call(dataSource, 'master')) as QueryRunner & {
      databaseConnection: unknown;
    };
    runner.databaseConnection = pooled.raw;
    try {
      if (pooled.failure) throw pooled.failure;
      await runner.query(plainBegin(type));
    } catch (error) {
      if (!isConnectionLost(type, error) && pooled.failure === undefined) {
        pooled.release();
        throw error;
      }
      await pooled.destroy(error as Error);
      if (attempt === 3) throw error;
      continue;
    }
    const shared = new SharedConnection(runner, pooled.raw, 'ntc_test', name, wait, type);
    return { name, dataSource, pooled, shared };
  }
}

/** Rolls the test's transaction back and gives its connection back to the pool. */
async function letGo({ pooled, shared }: Held): Promise<void> {
  try {
    await shared.runner.query('ROLLBACK');
    pooled.release();
  } catch (error) {
    await pooled.destroy(error as Error);
  }
}

/** Where the kit keeps a data source's own `createQueryRunner`, the one it found at its first test. */
const OWN_CREATE = Symbol('nestjs-typeorm-context.ownCreateQueryRunner');

/**
 * Gives `dataSource` (called `name`) a `createQueryRunner` of its own (an own property of the
 * instance, from the app's first test on) that decides whose runner plain TypeORM gets: work
 * born in an ended test that covered the data source gets a refusing one (never the pool, where
 * it would commit for real, nor a later test's connection); work of the running test (or born
 * outside any test) shares its connection, `shared`, while a test runs; the rest gets the data
 * source's own. `CREATE_RUNNER` keeps the own one for sessions (and says a test runs) while
 * `shared` is given.
 */
function routeRunners(
  runtime: SessionRuntime,
  name: string,
  dataSource: DataSource,
  shared?: SharedConnection,
): void {
  const source = dataSource as Replaceable & { [OWN_CREATE]?: DataSource['createQueryRunner'] };
  const create = (source[OWN_CREATE] ??= dataSource.createQueryRunner);
  const run = runtime.lenders.current;
  if (shared === undefined) delete source[CREATE_RUNNER];
  else source[CREATE_RUNNER] = create;
  source.createQueryRunner = (mode) => {
    const runner = create.call(dataSource, mode);
    const born = runtime.frame()?.routingUnit?.born;
    if (born !== undefined && born !== run) {
      // Sessions of work born in a test that did not cover the data source use its pool: so does it.
      return born.lenders.has(name) ? refuse(runner) : runner;
    }
    return shared === undefined ? runner : shareRunner(runner, shared);
  };
}

/** The error of work that goes on after its test transaction ended. */
const testEnded = (): Error => new TestTransactionError(messages.testEnded());

/** A runner of work an ended test left running: each of its statements fails. */
function refuse(runner: QueryRunner): QueryRunner {
  const refused = () => Promise.reject(testEnded());
  const internals = runner as QueryRunner & Record<string, unknown>;
  for (const method of ['connect', 'query', 'stream', 'startTransaction']) {
    internals[method] = refused;
  }
  return runner;
}
