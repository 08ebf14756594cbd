import type { DataSource, EntityManager, ReplicationMode } from 'typeorm';
import { messages } from '../errors/messages.js';
import { NoSessionContextError } from '../errors/no-session-context.error.js';
import type { ResolvedModuleOptions } from '../typeorm-context.options.js';
import {
  CallSiteWarnings,
  callSite,
  captureStack,
  type CapturedStack,
  UNKNOWN_SITE,
} from './call-site.js';

/**
 * What context-aware repositories and `@InjectSession()` managers resolve to outside any unit of
 * work (a script, a cron method, `onApplicationBootstrap`), as the module option `outsideUnit`
 * says: `'autocommit'` gives the data source's own manager; `'warn'` and `'throw'` a manager of
 * the data source that, when it is about to run SQL (it asks for a query runner: every statement,
 * query builder and stream does), logs a warning once per call site or fails with
 * `NoSessionContextError` before anything is sent. Reads that run no SQL (`repository.metadata`,
 * `manager.connection`, building a query) go through untouched, and `manager.transaction()` runs
 * on the data source's own manager: an explicit transaction is atomic, not silent autocommit.
 *
 * The call site is the application's frame of the stack captured when the manager was resolved,
 * which is still the caller's own stack (TypeORM awaits before some of its statements take a
 * runner): so each resolution outside a unit gets a manager of its own. Inside a unit none of
 * this runs. One per app: the warned call sites are the app's.
 */
export class OutsideUnitManagers {
  private readonly warnings = new CallSiteWarnings();

  constructor(private readonly mode: ResolvedModuleOptions['outsideUnit']) {}

  /** The manager of `dataSource` (called `name`) for code outside any unit of work. */
  manager(dataSource: DataSource, name: string): EntityManager {
    if (this.mode === 'autocommit') return dataSource.manager;
    const resolved = captureStack();
    // The data source itself but for the query runners it gives this manager's statements. An
    // object on top of it, not a Proxy: TypeORM's property reads of a data source stay fast for
    // the sessions' managers in units (a Proxy among them made those sites slower).
    const source: DataSource = Object.create(dataSource, {
      createQueryRunner: {
        value: (mode?: ReplicationMode) => {
          this.statement(name, resolved);
          return dataSource.createQueryRunner(mode);
        },
      },
    });
    const manager = source.createEntityManager();
    // Its own manager too: `repo.manager.connection.manager` / `.getRepository()` run through it.
    Object.defineProperty(source, 'manager', { value: manager });
    const plain = dataSource.manager;
    Object.defineProperty(manager, 'transaction', {
      value: plain.transaction.bind(plain),
      configurable: true,
      writable: true,
    });
    return manager;
  }

  /** A statement is about to run outside any unit, from the code that resolved the manager. */
  private statement(dataSource: string, resolved: CapturedStack): void {
    if (this.mode === 'throw') {
      const site = callSite(resolved)?.frame ?? UNKNOWN_SITE;
      throw new NoSessionContextError(messages.outsideUnitRefused(dataSource, site));
    }
    this.warnings.warn(
      resolved,
      (site) => messages.outsideUnitWarning(dataSource, site),
      dataSource,
    );
  }
}
