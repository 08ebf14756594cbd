import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { backendId, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle } from './support-a.js';
import { partners, startApp } from './two-apps-support.js';

/**
 * Found in the review of "no process-wide mutable state" (98b7a94) against 3e21254 (docs/transactions.md,
 * hooks: "inside a hook, `sessionContext.session()` of the same data source is that session too
 * ... in those of a `sessionFactory.open()` session, whichever context, or none, called its query
 * or `commit()`"). The hook's frame is a child of the CALLER's frame with the session put in place
 * under its data source NAME. When the caller is a context of app B, that frame's unit is B's:
 *
 * 1. app A's `session()` in A's own hook skips it (another app's unit) and finds no context;
 * 2. app B's `session()` there resolves 'default' to app A's session: B's code writes into A's
 *    database, inside A's transaction.
 */

/** What app A's beforeCommit hook saw. */
interface Seen {
  own?: string;
  viaContextOfA?: string;
  errorOfA?: string;
  viaContextOfB?: string;
}

let seen: Seen = {};
let contextOfA: SessionContext | undefined;
let contextOfB: SessionContext | undefined;
let engineOfA = engines[0]!;

async function probe(manager: EntityManager, hook: () => Promise<void>): Promise<void> {
  seen.own = await backendId(engineOfA, manager);
  await hook();
}

describe.each(partners)(
  'two apps: hooks of an app A factory session used in a context of app B; A on PostgreSQL, B on %s',
  (_name, partner) => {
    let a: TestApp;
    let b: TestApp;

    beforeEach(async () => {
      seen = {};
      engineOfA = engines[0]!;
      a = await startApp(engines[0]!, {
        context: {
          beforeCommit: (manager) =>
            probe(manager, async () => {
              try {
                seen.viaContextOfA = await backendId(engineOfA, contextOfA!.session());
              } catch (error) {
                seen.errorOfA = (error as Error).name;
              }
              if (contextOfB?.isActive()) {
                const viaB = contextOfB.session();
                seen.viaContextOfB = String(
                  (
                    (await viaB
                      .query('SELECT current_database() AS db')
                      .catch(() => viaB.query('SELECT DATABASE() AS db'))) as Array<{ db: string }>
                  )[0]?.db,
                );
              }
            }),
        },
      });
      b = await startApp(await partner());
      contextOfA = a.app.get(SessionContext);
      contextOfB = b.app.get(SessionContext);
    });

    afterEach(async () => {
      contextOfA = contextOfB = undefined;
      await a.close();
      await b.close();
    });

    /** Inside a context of B: opens a factory session of A, writes, commits, closes. */
    function useFactorySessionOfAInsideB() {
      return b.app.get(SessionFactory).runInNewContext(async () => {
        await contextOfB!.session().query('SELECT 1'); // B's context has a session of its own
        const session = a.app.get(SessionFactory).open();
        try {
          await session.manager.insert(Example, { text: 'factory A' });
          await session.commit();
        } finally {
          await session.close();
        }
      });
    }

    it("in A's beforeCommit, A's sessionContext.session() is A's factory session, even when B's context committed it", async () => {
      const result = await settle(useFactorySessionOfAInsideB(), "B's context");
      expect(result.ok ? 'ok' : `${result.name}: ${result.message}`).toBe('ok');
      // Expected: the hook's session() is the committing session. Before the fix: NoSessionContextError.
      expect(seen.errorOfA).toBeUndefined();
      expect(seen.viaContextOfA).toBe(seen.own);
      expect(await a.texts()).toEqual(['factory A']);
    });

    it("in A's beforeCommit called from B's context, B's sessionContext.session() is B's, never A's session", async () => {
      await settle(useFactorySessionOfAInsideB(), "B's context");
      // Expected: B's session() there is a session of B's context, on B's database. Before the fix, it is
      // A's factory session (the hook frame's override, keyed 'default', sits in B's unit).
      const databaseOfB = String(
        (
          (await b.dataSource
            .query('SELECT current_database() AS db')
            .catch(() => b.dataSource.query('SELECT DATABASE() AS db'))) as Array<{ db: string }>
        )[0]?.db,
      );
      expect(seen.viaContextOfB).toBe(databaseOfB);
    });
  },
);
