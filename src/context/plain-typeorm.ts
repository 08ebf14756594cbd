import type { ModulesContainer } from '@nestjs/core';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { messages } from '../errors/messages.js';
import type { ResolvedModuleOptions } from '../typeorm-context.options.js';
import { isSqlite } from '../session/transaction-dialect.js';
import { CallSiteWarnings, captureStack } from './call-site.js';

/** Where plain TypeORM code stands, as the app's runtime sees it from the current context. */
export interface PlainTypeormRoutes {
  /**
   * The manager plain TypeORM code of data source `name` runs on here: the session's of the
   * current unit (or of a REQUIRES_NEW block, a factory session), created on first use; with
   * `blocks`, in a NOT_SUPPORTED block, the block's own auto-committing manager (bounded by
   * `acquireTimeout`, as this library's repositories there). Undefined outside any unit (and in
   * such a block without `blocks`). Throws once the unit has ended.
   */
  joinedManager(name: string, blocks: boolean): EntityManager | undefined;
  /** Whether code here runs inside a live unit of work of `name` (never creates a session). */
  insideUnit(name: string): boolean;
}

/** How one data source's plain calls are routed: the module's mode, or `'join-warn'` (SQLite). */
type RouteMode = 'join' | 'warn' | 'join-warn';

/** EntityManager methods that never run SQL, or that must stay the plain manager's own. */
const LEFT_ALONE = new Set([
  'constructor',
  'release',
  'create',
  'merge',
  'hasId',
  'getId',
  'getRepository',
  'getTreeRepository',
  'getMongoRepository',
  'withRepository',
  'getCustomRepository',
  'normalizeAndValidateWhereCriteria',
]);

/** A method of a TypeORM object, called with its receiver. */
type Method = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Plain TypeORM code inside a unit of work, as the module option `plainTypeorm` says. Plain code
 * reaches the database through the data source's own manager (`dataSource.manager`, which every
 * repository of `TypeOrmModule.forFeature()` and `dataSource.getRepository()` holds, and which
 * `dataSource.transaction()` calls) or through `dataSource.query()` / `createQueryBuilder()`.
 * Those methods get an own property on this app's instances (never a TypeORM prototype) that,
 * inside a unit of work:
 * - `'join'`: runs the call on the unit's session's manager instead (so `transaction()` is a
 *   savepoint block, a query builder is bound to the session's connection);
 * - `'warn'`: logs a warning naming the call site, once per call site, then runs it as plain
 *   TypeORM.
 * In a NOT_SUPPORTED block, `'join'` runs a manager's call on the block's own bounded manager
 * (as this library's repositories there). Outside any unit, and for calls that bring their own
 * query runner (every session's manager does), the method runs as TypeORM's own. `createQueryRunner()` is left
 * alone: code that asks for a runner of its own gets its own connection, as with the factory.
 * One per app: the warned call sites are the app's.
 */
export class PlainTypeorm {
  private readonly warnings = new CallSiteWarnings();
  /** The managers routed already. */
  private readonly routed = new WeakSet<EntityManager>();

  constructor(
    private readonly mode: ResolvedModuleOptions['plainTypeorm'],
    private readonly routes: PlainTypeormRoutes,
  ) {}

  /** Routes the plain TypeORM calls of `dataSource` (called `name`), unless the mode is `'off'`. */
  install(name: string, dataSource: DataSource): void {
    if (this.mode === 'off') return;
    const mode = this.modeFor(dataSource);
    this.routeManager(name, dataSource.manager, mode);
    // A manager made later without a runner of its own is as plain as the data source's. Made
    // on an object on top of the data source (this library's own managers outside a unit), it
    // is left as it is.
    const create = dataSource.createEntityManager;
    const made = (self: unknown, runner: unknown, manager: EntityManager) => {
      if (self === dataSource && runner === undefined) this.routeManager(name, manager, mode);
      return manager;
    };
    Object.defineProperty(dataSource, 'createEntityManager', {
      value: function (this: DataSource, runner?: QueryRunner): EntityManager {
        return made(this, runner, create.call(this, runner));
      },
      configurable: true,
      writable: true,
    });
    // Their own query runner (a session's manager passes its own): TypeORM's call as it is.
    this.route(
      mode,
      dataSource,
      'query',
      name,
      (manager, args) => manager.query(...(args as [string, unknown[]?])),
      (args) => args[2] !== undefined,
    );
    this.route(
      mode,
      dataSource,
      'createQueryBuilder',
      name,
      (manager, args) => (manager.createQueryBuilder as Method).apply(manager, args),
      (args) => (args[1] === undefined ? isQueryRunner(args[0]) : args[2] !== undefined),
    );
  }

  /**
   * Routes the managers the app's providers made of `dataSource` before it started (a provider
   * `useFactory: (ds) => ds.createEntityManager()`), which `install()` came too late to see.
   */
  installProvided(name: string, dataSource: DataSource, modules: ModulesContainer): void {
    if (this.mode === 'off') return;
    for (const module of modules.values()) {
      for (const { instance } of module.providers.values()) {
        if (!isEntityManager(instance) || this.routed.has(instance)) continue;
        const source = (instance as { dataSource?: DataSource }).dataSource ?? instance.connection;
        if (source === dataSource && instance.queryRunner === undefined) {
          this.routeManager(name, instance, this.modeFor(dataSource));
        }
      }
    }
  }

  /**
   * How the plain calls of `dataSource` are routed: the module's mode, except on SQLite, where
   * plain code on a runner of its own would wait for the unit's turn on the one connection, which
   * waits for it: there 'warn' joins the unit, and warns.
   */
  private modeFor(dataSource: DataSource): RouteMode {
    const mode = this.mode as RouteMode;
    return mode === 'warn' && isSqlite(dataSource.options.type) ? 'join-warn' : mode;
  }

  /** Routes the methods of `manager` (of data source `name`) that may run SQL. */
  private routeManager(name: string, manager: EntityManager, mode: RouteMode): void {
    this.routed.add(manager);
    for (const method of managerMethods(manager)) {
      this.route(
        mode,
        manager,
        method,
        name,
        (joined, args) => (joined[method as keyof EntityManager] as Method).apply(joined, args),
        undefined,
        true,
      );
    }
  }

  /**
   * Gives `target[method]` an own property that runs `joined` on the session plain code joins
   * (`'join'`; `'join-warn'` also warns) or warns (`'warn'`) inside a unit, and the method it
   * shadows everywhere else.
   */
  private route(
    mode: RouteMode,
    target: object,
    method: string,
    name: string,
    joined: (manager: EntityManager, args: unknown[]) => unknown,
    ownRunner: (args: unknown[]) => boolean = () => false,
    blocks = false,
  ): void {
    const shadowed = (target as Record<string, Method>)[method]!;
    const { routes } = this;
    const warnJoined = mode === 'join-warn' ? () => this.warnJoined(name, method) : undefined;
    const call =
      mode !== 'warn'
        ? function (this: unknown, ...args: unknown[]): unknown {
            let manager: EntityManager | undefined;
            try {
              manager = ownRunner(args) ? undefined : routes.joinedManager(name, blocks);
            } catch (error) {
              // The unit has ended. Joined only because the unit held SQLite's connection
              // ('join-warn'): plain code after it runs on its own, as 'warn' does elsewhere.
              if (warnJoined !== undefined) return shadowed.apply(this, args);
              // 'join': fail as the method would, a builder at once, a query later.
              if (method === 'createQueryBuilder') throw error;
              return Promise.reject(error as Error);
            }
            // The block's manager may be this very one (a SUPPORTS block without a transaction).
            if (manager === undefined || manager === this) return shadowed.apply(this, args);
            // Only a session's manager has a runner: a block's plain manager is deliberate.
            if (manager.queryRunner !== undefined) warnJoined?.();
            return joined(manager, args);
          }
        : (() => {
            const warn = (args: unknown[]) => {
              if (!ownRunner(args) && routes.insideUnit(name)) this.warn(name, method);
            };
            return function (this: unknown, ...args: unknown[]): unknown {
              warn(args);
              return shadowed.apply(this, args);
            };
          })();
    Object.defineProperty(target, method, { value: call, configurable: true, writable: true });
  }

  /** Plain TypeORM code of a SQLite data source joined a unit (`'join-warn'`): logged once per call site. */
  private warnJoined(dataSource: string, method: string): void {
    this.warnings.warn(
      captureStack(),
      (site) => messages.plainTypeormJoinedSqlite(dataSource, method, site),
      dataSource,
    );
  }

  /** Plain TypeORM code called `method` inside a unit: logged once per call site. */
  private warn(dataSource: string, method: string): void {
    this.warnings.warn(
      captureStack(),
      (site) => messages.plainTypeormWarning(dataSource, method, site),
      dataSource,
    );
  }
}

/** The methods of `manager` that may run SQL (every EntityManager method but `LEFT_ALONE`). */
function managerMethods(manager: EntityManager): string[] {
  const names = new Set<string>();
  for (
    let proto = Object.getPrototypeOf(manager) as object | null;
    proto !== null && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key)!;
      if (typeof descriptor.value === 'function' && !LEFT_ALONE.has(key)) names.add(key);
    }
  }
  return [...names];
}

/** Whether `value` is a TypeORM EntityManager (of whichever copy of TypeORM). */
function isEntityManager(value: unknown): value is EntityManager {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { '@instanceof'?: symbol })['@instanceof'] === Symbol.for('EntityManager')
  );
}

/** Whether `value` is a QueryRunner (the first argument of `createQueryBuilder(queryRunner)`). */
function isQueryRunner(value: unknown): value is QueryRunner {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as QueryRunner).query === 'function' &&
    typeof (value as QueryRunner).release === 'function'
  );
}
