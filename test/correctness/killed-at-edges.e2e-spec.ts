import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  DataSource,
  type EntitySubscriberInterface,
  EventSubscriber,
  type TransactionRollbackEvent,
  type TransactionStartEvent,
} from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, sleep, within } from './support-b.js';

/** What the subscriber does before the next BEGIN or ROLLBACK: kill the connection it goes on. */
const killer: {
  admin?: DataSource;
  engine?: Engine;
  armed?: 'begin' | 'rollback';
  /** How long to wait after the kill: 0 races the driver seeing the server's goodbye. */
  settleMs: number;
} = { settleMs: 300 };

async function kill(event: { queryRunner: unknown }): Promise<void> {
  killer.armed = undefined;
  const raw = (event.queryRunner as { databaseConnection: unknown }).databaseConnection as {
    processID?: number;
    threadId?: number;
  };
  await (killer.engine!.name === 'postgres'
    ? killer.admin!.query(`SELECT pg_terminate_backend(${raw.processID})`)
    : killer.admin!.query(`KILL ${raw.threadId}`));
  if (killer.settleMs > 0) await sleep(killer.settleMs); // the driver sees the server's goodbye
}

/** Kills, from the admin connection, the server connection a BEGIN or ROLLBACK is about to go on. */
@EventSubscriber()
class Killer implements EntitySubscriberInterface {
  async beforeTransactionStart(event: TransactionStartEvent) {
    if (killer.armed === 'begin') await kill(event);
  }
  async beforeTransactionRollback(event: TransactionRollbackEvent) {
    if (killer.armed === 'rollback') await kill(event);
  }
}

describe.each(engines)(
  'a connection killed as its session begins or rolls back ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let factory: SessionFactory;
    let context: SessionContext;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ ...typeormOptions(engine, 2), subscribers: [Killer] }),
          TypeOrmContextModule.forRoot(),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      t = wrap(app, engine, app.get(DataSource));
      factory = app.get(SessionFactory);
      context = app.get(SessionContext);
      killer.engine = engine;
      killer.admin = new DataSource({ ...typeormOptions(engine, 1), subscribers: [] } as never);
      await killer.admin.initialize();
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await killer.admin?.destroy();
      await closeApp(t, engine);
    });

    it("an open() session's statements fail with ConnectionLostError, and the next session works", async () => {
      const session = factory.open();
      killer.armed = 'begin';
      killer.settleMs = 300;
      const first = await within(
        HANG_MS,
        'the first statement of a session killed as it begins',
        session.manager.insert(Example, { text: 'first' }).then(
          () => undefined,
          (error: Error) => error,
        ),
      );
      const second = await within(
        HANG_MS,
        'the second statement of that session',
        session.manager.insert(Example, { text: 'second' }).then(
          () => undefined,
          (error: Error) => error,
        ),
      );
      const committed = await session.commit().then(
        () => true,
        () => false,
      );
      await session.close();
      expect(killer.armed).toBeUndefined(); // the kill did happen
      expect(`${first?.name}: ${first?.message}`).toMatch(/^ConnectionLostError: /);
      expect(second ? `${second.name}: ${second.message}` : 'ok').toMatch(
        /^(ConnectionLostError: |ok$)/,
      );
      const next = factory.open();
      await next.manager.insert(Example, { text: 'next' });
      await next.commit();
      await next.close();
      expect(await t.texts()).toEqual(second || !committed ? ['next'] : ['next', 'second']);
    });

    it.each([0, 300])(
      'close() of a session whose connection is killed as it rolls back resolves (the server rolled back; settle %i ms)',
      async (settleMs) => {
        const session = factory.open();
        await session.manager.insert(Example, { text: 'rolled_back' });
        killer.armed = 'rollback';
        killer.settleMs = settleMs;
        const closed = await within(
          HANG_MS,
          'close() of a session killed as it rolls back',
          session.close().then(
            () => 'resolved',
            (error: Error) => `${error.name}: ${error.message}`,
          ),
        );
        expect(killer.armed).toBeUndefined(); // the kill did happen
        expect(closed).toBe('resolved');
        expect(await t.texts()).toEqual([]);
      },
    );

    // Found by the randomized test (test/fuzz/regressions.ts): a savepoint's own statement that is
    // the first to meet the dead connection surfaced the driver's error (SAVEPOINT, RELEASE) or
    // made the transaction a TransactionAbortedError (ROLLBACK TO SAVEPOINT).
    it.each([
      ['begin', 0],
      ['begin', 300],
      ['rollback', 0],
      ['rollback', 300],
    ] as const)(
      'a NESTED block whose connection is killed as its savepoint %s: the block and the transaction fail with ConnectionLostError (settle %i ms)',
      async (edge, settleMs) => {
        let inner = 'not run';
        const outcome = await within(
          HANG_MS,
          `a transaction killed as a savepoint ${edge}`,
          factory
            .atomic(async (manager) => {
              await manager.insert(Example, { text: 'outer' });
              killer.armed = edge === 'begin' ? 'begin' : 'rollback';
              killer.settleMs = settleMs;
              inner = await context
                .atomic(
                  async () => {
                    if (edge === 'rollback') throw new Error('inner failure');
                  },
                  { propagation: Propagation.NESTED },
                )
                .then(
                  () => 'ok',
                  (error: Error) => error.name,
                );
            })
            .then(
              () => 'committed',
              (error: Error) => error.name,
            ),
        );
        expect(killer.armed).toBeUndefined(); // the kill did happen
        expect(inner).toBe(edge === 'begin' ? 'ConnectionLostError' : 'Error');
        expect(outcome).toBe('ConnectionLostError');
        expect(await t.texts()).toEqual([]);
      },
    );
  },
);
