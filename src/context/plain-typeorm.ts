import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { messages } from '../errors/messages.js';
import { logger } from '../logger.js';
import type { LazySession } from '../session/lazy-session.js';
import type { ResolvedModuleOptions } from '../typeorm-context.options.js';
import { callSite, captureStack } from './call-site.js';

/** Where plain TypeORM code stands, as the app's runtime sees it from the current context. */
export interface PlainTypeormRoutes {
  /**
   * The session plain TypeORM code of data source `name` joins here: the current unit's (or a
   * REQUIRES_NEW block's, a factory session's), created on first use; undefined outside any unit
   * and in a NOT_SUPPORTED block. Throws once the unit has ended.
   */
  joinedSession(name: string): LazySession | undefined;
  /** Whether code here runs inside a live unit of work of `name` (never creates a session). */
  insideUnit(name: string): boolean;
}

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
 * Outside any unit, in a NOT_SUPPORTED block, and for calls that bring their own query runner
 * (every session's manager does), the method runs as TypeORM's own. `createQueryRunner()` is left
 * alone: code that asks for a runner of its own gets its own connection, as with the factory.
 * One per app: the warned call sites are the app's.
 */
export class PlainTypeorm {
  private readonly warned = new Set<string>();

  constructor(
    private readonly mode: ResolvedModuleOptions['plainTypeorm'],
    private readonly routes: PlainTypeormRoutes,
  ) {}

  /** Routes the plain TypeORM calls of `dataSource` (called `name`), unless the mode is `'off'`. */
  install(name: string, dataSource: DataSource): void {
    if (this.mode === 'off') return;
    this.routeManager(name, dataSource.manager);
    // A manager made later without a runner of its own is as plain as the data source's. Made
    // on an object on top of the data source (this library's own managers outside a unit), it
    // is left as it is.
    const create = dataSource.createEntityManager;
    const made = (self: unknown, runner: unknown, manager: EntityManager) => {
      if (self === dataSource && runner === undefined) this.routeManager(name, manager);
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
      dataSource,
      'query',
      name,
      (session, args) => session.manager.query(...(args as [string, unknown[]?])),
      (args) => args[2] !== undefined,
    );
    this.route(
      dataSource,
      'createQueryBuilder',
      name,
      (session, args) =>
        (session.manager.createQueryBuilder as Method).apply(session.manager, args),
      (args) => (args[1] === undefined ? isQueryRunner(args[0]) : args[2] !== undefined),
    );
  }

  /** Routes the methods of `manager` (of data source `name`) that may run SQL. */
  private routeManager(name: string, manager: EntityManager): void {
    for (const method of managerMethods(manager)) {
      this.route(manager, method, name, (session, args) =>
        (session.manager[method as keyof EntityManager] as Method).apply(session.manager, args),
      );
    }
  }

  /**
   * Gives `target[method]` an own property that runs `joined` on the session plain code joins
   * (`'join'`) or warns (`'warn'`) inside a unit, and the method it shadows everywhere else.
   */
  private route(
    target: object,
    method: string,
    name: string,
    joined: (session: LazySession, args: unknown[]) => unknown,
    ownRunner: (args: unknown[]) => boolean = () => false,
  ): void {
    const shadowed = (target as Record<string, Method>)[method]!;
    const { routes } = this;
    const call =
      this.mode === 'join'
        ? function (this: unknown, ...args: unknown[]): unknown {
            let session: LazySession | undefined;
            try {
              session = ownRunner(args) ? undefined : routes.joinedSession(name);
            } catch (error) {
              // The unit has ended: fail as the method would, a builder at once, a query later.
              if (method === 'createQueryBuilder') throw error;
              return Promise.reject(error as Error);
            }
            return session === undefined ? shadowed.apply(this, args) : joined(session, args);
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

  /** Plain TypeORM code called `method` inside a unit: logged once per call site. */
  private warn(dataSource: string, method: string): void {
    const found = callSite(captureStack());
    const site = found?.frame ?? 'an unknown call site (no frame of your code in the stack)';
    const key = `${dataSource}\n${found?.line ?? site}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    logger.warn(messages.plainTypeormWarning(dataSource, method, site));
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

/** Whether `value` is a QueryRunner (the first argument of `createQueryBuilder(queryRunner)`). */
function isQueryRunner(value: unknown): value is QueryRunner {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as QueryRunner).query === 'function' &&
    typeof (value as QueryRunner).release === 'function'
  );
}
