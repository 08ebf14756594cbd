import { Injectable, Module } from '@nestjs/common';
import { Example } from '../support/example.entity.js';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { settle } from './support-a.js';
import { partners, startApp } from './two-apps-support.js';

/**
 * Found in the review of "no process-wide mutable state" (98b7a94): the runtime is bound at app.init() onto
 * each instance as ONE property, which the next app that holds the same object overwrites. So an
 * object two apps hold (A's instance handed to B as a `useValue`; a module-level `useValue` both
 * apps import) runs on whichever app initialized LAST: A's own calls write into B's database or,
 * once B closed, fail with "has shut down" - the very bug the commit set out to remove.
 */

/** The same class in both apps. */
@Injectable()
class Writer {
  constructor(private readonly context: SessionContext) {}

  @Transactional()
  async write(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }
}

/** A generic helper a shared module provides as a value: one object, both apps import it. */
class TxHelper {
  @Transactional()
  async inTransaction<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }
}
const helper = new TxHelper();

/** A shared helper that needs its caller's transaction. */
class MandatoryHelper {
  @Transactional({ propagation: Propagation.MANDATORY })
  async inCallersTransaction<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }
}
const mandatory = new MandatoryHelper();

@Module({
  providers: [
    { provide: TxHelper, useValue: helper },
    { provide: MandatoryHelper, useValue: mandatory },
  ],
  exports: [TxHelper, MandatoryHelper],
})
class SharedHelperModule {}

/** A service whose factory freezes it (an immutable service): Nest created it all the same. */
const FROZEN = 'FROZEN_WRITER';

describe.each(partners)(
  'two apps: objects two apps hold; app A on PostgreSQL, app B on %s',
  (_name, partner) => {
    let a: TestApp;
    let b: TestApp | undefined;

    afterEach(async () => {
      await a?.close();
      await b?.close();
      b = undefined;
    });

    it("A's own instance, also given to app B as a useValue, still runs on A (the app that created it)", async () => {
      // Expected: Writer was created by A's container; B only received the object. A's call,
      // outside any context, runs on A and writes into A's database. Before the fix, B's init re-binds the
      // instance to B: the call opens a context of B, so A's session() finds no context of A.
      a = await startApp(engines[0]!, { providers: [Writer] });
      const writerOfA = a.app.get(Writer);
      b = await startApp(await partner(), {
        providers: [{ provide: Writer, useValue: writerOfA }],
      });
      const result = await settle(writerOfA.write('A'), 'A.write()');
      expect(result.ok ? 'ok' : `${result.name}: ${result.message}`).toBe('ok');
      expect(await a.texts()).toEqual(['A']);
      expect(await b.rows()).toBe(0);
    });

    it('a useValue object both apps import, called inside a context of A after app B closed, still works', async () => {
      // Expected: the helper is called in A's context, and A is running: it runs there (the
      // object is no more B's than A's). Before the fix, it is bound to B (initialized last) and, B being
      // closed, fails with "TypeOrmContextModule has shut down" - the original two-apps bug.
      a = await startApp(engines[0]!, { imports: [SharedHelperModule] });
      b = await startApp(await partner(), { imports: [SharedHelperModule] });
      await b.close();
      b = undefined;
      const sessions = a.app.get(SessionContext);
      const work = a.app
        .get(SessionFactory)
        .runInNewContext(() =>
          a.app
            .get(TxHelper)
            .inTransaction(() => sessions.session().insert(Example, { text: 'A, after B closed' })),
        );
      const result = await settle(work, "A's context");
      expect(result.ok ? 'ok' : `${result.name}: ${result.message}`).toBe('ok');
      expect(await a.texts()).toEqual(['A, after B closed']);
    });

    it('a useValue object both apps import, called inside a context of B (initialized last), runs on B', async () => {
      // The rule: in a context of one of the apps that hold it, the object runs on that app; else
      // on the first one still running. Here a MANDATORY method finds B's transaction (on A, the
      // first app, there would be none: TransactionRequiredError).
      a = await startApp(engines[0]!, { imports: [SharedHelperModule] });
      b = await startApp(await partner(), { imports: [SharedHelperModule] });
      const sessions = b.app.get(SessionContext);
      const work = b.app
        .get(SessionFactory)
        .runInNewContext(() =>
          b!.app
            .get(MandatoryHelper)
            .inCallersTransaction(() => sessions.session().insert(Example, { text: 'B' })),
        );
      const result = await settle(work, "B's context");
      expect(result.ok ? 'ok' : `${result.name}: ${result.message}`).toBe('ok');
      expect(await b.texts()).toEqual(['B']);
      expect(await a.rows()).toBe(0);
    });

    it('a provider whose factory returns a frozen instance runs on the app that created it', async () => {
      // Expected (README: "a decorated method runs on the app whose container created the
      // instance"): Nest created it, so outside any context it runs on A. Before the fix, a frozen object
      // cannot take the bound property, and the call fails with ModuleNotInitializedError
      // saying "no initialized Nest application created" it.
      a = await startApp(engines[0]!, {
        providers: [
          {
            provide: FROZEN,
            useFactory: (context: SessionContext) => Object.freeze(new Writer(context)),
            inject: [SessionContext],
          },
        ],
      });
      const frozen = a.app.get<Writer>(FROZEN);
      const result = await settle(frozen.write('frozen A'), 'frozen.write()');
      expect(result.ok ? 'ok' : `${result.name}: ${result.message}`).toBe('ok');
      expect(await a.texts()).toEqual(['frozen A']);
    });
  },
);
