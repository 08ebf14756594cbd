import { disableFor, enableFor } from '../diagnostics/module-instrumentations.js';
import { addLiveDataSources, removeLiveDataSources } from '../diagnostics/pools.js';
import type { OnApplicationBootstrap, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { ApplicationConfig, type ModuleRef, type ModulesContainer } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { messages } from '../errors/messages.js';
import { ModuleNotInitializedError } from '../errors/module-not-initialized.error.js';
import { NoSessionContextError } from '../errors/no-session-context.error.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import { UnknownDataSourceError } from '../errors/unknown-data-source.error.js';
import { TransactionRunner } from '../transactional/transaction-runner.js';
import { DEFAULT_ACQUIRE_TIMEOUT, type ResolvedModuleOptions } from '../typeorm-context.options.js';
import { frames } from './frames.js';
import type { ContextFrame } from './context-frame.js';
import { contextStorage } from './context-storage.js';
import { recordInstances } from './instance-runtime.js';
import { OutsideUnitManagers } from './outside-unit.js';
import { PlainTypeorm, type PlainTypeormRoutes } from './plain-typeorm.js';
import { logger, reportError } from '../logger.js';
import { SlowTransactionLog } from '../diagnostics/slow-transactions.js';
import { ConnectionWaits } from '../session/connection-wait.js';
import { detachPlainConnects } from '../session/plain-connects.js';
import { guardPool } from '../session/pool-guard.js';
import { queueSqlite } from '../session/sqlite-setup.js';
import { replicaPoolsOf } from '../session/replica-setup.js';
import { LazySession } from '../session/lazy-session.js';
import { Lenders } from '../session/lenders.js';
import type { UnitOfWork } from './unit-of-work.js';
import type { SessionHooks, SessionOwner } from '../session/session-hooks.js';
import { assertSupportedDriver, type BeginOptions } from '../session/transaction-dialect.js';

/**
 * One app's runtime: the configured data sources, the hooks, and the lookup of the current
 * session. `@Transactional()` reaches it without DI through the instance it runs on (recorded at
 * startup, see `instance-runtime.ts`) or the context it runs in: one per app, never a global.
 */
export class SessionRuntime
  implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown, PlainTypeormRoutes
{
  private readonly dataSources = new Map<string, DataSource>();
  private initialized = false;
  private closed = false;
  /** Connections lent to the sessions of a data source instead of its pool (test transactions). */
  readonly lenders = new Lenders();
  /** Hooks every session of this runtime runs. */
  readonly hooks: SessionHooks;
  /** Decides propagation for every transactional block. */
  readonly transactions = new TransactionRunner(this);
  /** What repositories and `@InjectSession()` resolve to outside any unit of work. */
  private readonly outside: OutsideUnitManagers;
  /** Routes plain TypeORM code inside a unit of work (`plainTypeorm`). */
  private readonly plain: PlainTypeorm;
  /** Warns about slow transactions and units (`slowTransactionMs`); subscribed while the app runs. */
  private readonly slow?: SlowTransactionLog;

  constructor(
    /** The module options, defaults applied. */
    readonly options: ResolvedModuleOptions,
    private readonly moduleRef: ModuleRef,
    /** The app's modules, whose `@Transactional()` instances get recorded for this runtime. */
    private readonly modules: ModulesContainer,
  ) {
    this.hooks = {
      app: this,
      onSessionStart: options.onSessionStart,
      beforeCommit: options.beforeCommit,
      acquireTimeout: options.acquireTimeout,
      waits: new ConnectionWaits(),
      reportError,
      frames,
      throwErrors: options.callbackErrors === 'throw',
      lender: (name, born) => this.lenders.lender(name, born),
    };
    this.outside = new OutsideUnitManagers(options.outsideUnit);
    this.plain = new PlainTypeorm(options.plainTypeorm, this);
    const threshold = options.slowTransactionMs;
    if (threshold !== undefined) this.slow = new SlowTransactionLog(this, threshold);
  }

  /**
   * Resolves every configured data source from `@nestjs/typeorm` at startup, and records this
   * app for its instances.
   */
  onModuleInit(): void {
    if (this.initialized) return;
    for (const name of this.options.dataSources) {
      let dataSource: DataSource;
      try {
        dataSource = this.moduleRef.get<DataSource>(getDataSourceToken(name), { strict: false });
      } catch (cause) {
        throw new UnknownDataSourceError(messages.dataSourceNotRegistered(name), { cause });
      }
      assertSupportedDriver(dataSource.options.type);
      queueSqlite(
        name,
        dataSource,
        this.hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT,
        this.hooks.waits,
      );
      if (this.options.guardPool) {
        guardPool(dataSource, (error, replica) => {
          const pool = replica === undefined ? '' : `replica ${replica} of `;
          logger.warn(`A connection of ${pool}data source '${name}' failed: ${error.message}`);
        });
      }
      detachPlainConnects(dataSource);
      this.plain.install(name, dataSource);
      this.plain.installProvided(name, dataSource, this.modules);
      this.dataSources.set(name, dataSource);
    }
    const replicas = replicaPoolsOf(this.dataSources, this.options, this.hooks.waits);
    if (replicas.size > 0) this.hooks.replicas = (name) => replicas.get(name);
    this.initialized = true;
    addLiveDataSources(this, this.dataSources);
    enableFor(this, this.options.instrumentations);
    this.slow?.subscribe();
    recordInstances(this.modules, this, this.globalInterceptors());
  }

  /** Records this app for global interceptors `app.useGlobalInterceptors()` got after its modules initialized. */
  onApplicationBootstrap(): void {
    recordInstances(undefined, this, this.globalInterceptors());
  }

  /** Refuses new work once the application shuts down, and stops the slow-transaction log. */
  onApplicationShutdown(): void {
    this.closed = true;
    removeLiveDataSources(this);
    disableFor(this, this.options.instrumentations);
    this.slow?.unsubscribe();
  }

  /** Whether the app is initialized and not shut down. */
  get running(): boolean {
    return this.initialized && !this.closed;
  }

  /** The interceptors given to `app.useGlobalInterceptors()` (an `AutoCommitInterceptor` created with `new`). */
  private globalInterceptors(): unknown[] {
    try {
      return this.moduleRef.get(ApplicationConfig, { strict: false }).getGlobalInterceptors();
    } catch {
      return [];
    }
  }

  /**
   * The data source called `name`; throws a how-to-fix error for an unknown name, and once the
   * application shut down (or the data source was destroyed).
   */
  dataSource(name: string): DataSource {
    const dataSource = this.dataSources.get(name);
    if (dataSource === undefined) {
      if (!this.initialized) throw new ModuleNotInitializedError(messages.notInitialized());
      throw new UnknownDataSourceError(messages.unknownDataSource(name, this.options.dataSources));
    }
    if (this.closed || !dataSource.isInitialized) {
      throw new ModuleNotInitializedError(messages.shutDown());
    }
    return dataSource;
  }

  /** A new session of `name` for `owner`, not attached to any context. */
  createSession(name: string, owner: SessionOwner, begin?: BeginOptions): LazySession {
    return new LazySession(name, this.dataSource(name), this.hooks, owner, begin);
  }

  /**
   * The current context's session for `name` (a block's own session or plain manager first),
   * created on first use. Throws at once outside a context or after the context ended.
   */
  current(name: string): LazySession | EntityManager {
    if (this.closed) throw new ModuleNotInitializedError(messages.shutDown());
    const found = this.lookup(name);
    if (found === undefined) throw new NoSessionContextError(messages.noContext(name));
    return found;
  }

  /**
   * The manager code should use here for `name` (what repositories and `@InjectSession()` resolve
   * to on every call): the current session's, or a block's plain one (NOT_SUPPORTED). Outside any
   * unit, one of the data source's as the `outsideUnit` option says; under a running test
   * transaction that lends `name` its connection, the data source's own (the test body's work
   * runs in the test's transaction, see docs/testing.md).
   */
  manager(name: string): EntityManager {
    const found = this.lookup(name);
    if (found !== undefined) return found instanceof LazySession ? found.manager : found;
    const dataSource = this.dataSource(name);
    if (this.lenders.lender(name, undefined) !== undefined) return dataSource.manager;
    return this.outside.manager(dataSource, name);
  }

  /** The names of the data sources the module serves. */
  get dataSourceNames(): readonly string[] {
    return this.options.dataSources;
  }

  /** Whether `onModuleInit()` has resolved the data sources. */
  get ready(): boolean {
    return this.initialized;
  }

  /** The current frame, if it (or one it was opened in) belongs to this app: see `ContextFrame.ownedBy()`. */
  frame(): ContextFrame | undefined {
    return contextStorage.getStore()?.ownedBy(this);
  }

  /** See `PlainTypeormRoutes.joinedManager()`. */
  joinedManager(name: string, blocks: boolean): EntityManager | undefined {
    if (this.closed || this.frame() === undefined) return undefined;
    const found = this.lookup(name);
    if (found instanceof LazySession) return found.manager;
    return blocks ? found : undefined;
  }

  /** See `PlainTypeormRoutes.insideUnit()`. */
  insideUnit(name: string): boolean {
    const frame = this.frame();
    if (frame === undefined) return false;
    const override = frame.find(name);
    if (override !== undefined) return override instanceof LazySession;
    return frame.unit !== undefined && !frame.unit.ended;
  }

  private lookup(name: string): LazySession | EntityManager | undefined {
    const frame = this.frame();
    const override = frame?.find(name);
    if (override !== undefined) return override;
    const unit = frame?.unit;
    if (unit === undefined) return undefined;
    if (unit.ended) throw new SessionContextEndedError(messages.contextEnded(name));
    return this.unitSession(unit, name);
  }

  /** `unit`'s session for `name`, created on first use (begun as the unit says, if it says). */
  unitSession(unit: UnitOfWork, name: string): LazySession {
    return (
      unit.live(name) ??
      unit.session(name, () => this.createSession(name, 'context', unit.begin?.(name)))
    );
  }

  /** Like `current()` but never creates a session. */
  existing(name: string): LazySession | EntityManager | undefined {
    const frame = this.frame();
    const override = frame?.find(name);
    if (override !== undefined) return override;
    const unit = frame?.unit;
    if (unit === undefined) throw new NoSessionContextError(messages.noContext(name));
    this.dataSource(name);
    const session = unit.sessions.get(name);
    return session?.replaceable ? undefined : session;
  }
}
