import { jest } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/**
 * A suite that freezes the clock with Jest's fake timers (Date and performance faked, the timers
 * the drivers need left real): the testing kit must still keep test 1's work out of test 2.
 */
describe.each(enginesAndSqlite)(
  'testing kit: TestTransaction with a frozen clock ($name)',
  (engine) => {
    let app: INestApplication;
    let dataSource: DataSource;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot(typeormOptions(engine)),
          TypeOrmContextModule.forRoot({ acquireTimeout: 500 }),
        ],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      dataSource = app.get(DataSource);
      await dataSource.query('DELETE FROM example');
    });
    afterEach(() => {
      jest.useRealTimers();
    });
    afterAll(async () => {
      await dataSource.query('DELETE FROM example');
      await within(app.close(), 'app.close()');
    });

    // Expected (docs/testing.md): a unit that began during test 1 and goes on after rollback() fails
    // at its next statement with TestTransactionError, also when test 2 already started. Before the fix,
    // with performance.now() frozen, test 1's end and test 2's start have the same time as the unit's
    // birth, and the unit's write is lent test 2's connection: it lands in test 2's transaction.
    it.each([
      ['control: real clock', false],
      ['clock frozen by jest.useFakeTimers()', true],
    ])(
      '%s: a unit of test 1 that writes after rollback(), while test 2 runs: fails, not into test 2',
      async (_label, frozen) => {
        if (frozen)
          jest.useFakeTimers({
            doNotFake: [
              'nextTick',
              'queueMicrotask',
              'setImmediate',
              'clearImmediate',
              'setTimeout',
              'clearTimeout',
              'setInterval',
              'clearInterval',
            ],
            now: new Date('2026-01-01T00:00:00Z'),
          });
        const factory = app.get(SessionFactory);
        const context = app.get(SessionContext);
        let go: () => void = () => undefined;
        const gate = new Promise<void>((resolve) => (go = resolve));
        const tx1 = await TestTransaction.start(app);
        const job = settle(
          factory.runInNewContext(async () => {
            await gate; // a job the test did not await: it writes only after the test rolled back
            await context.session().insert(Example, { text: 'test 1 job' });
          }),
          "test 1's job",
        );
        expect((await settle(tx1.rollback(), 'tx1.rollback()')).ok).toBe(true);
        const tx2 = await TestTransaction.start(app);
        let seenInTest2: unknown;
        try {
          go();
          const result = await job;
          seenInTest2 = await dataSource.query(
            "SELECT text FROM example WHERE text = 'test 1 job'",
          );
          expect({ job: result.ok ? 'ok' : result.name, seenInTest2 }).toEqual({
            job: 'TestTransactionError',
            seenInTest2: [],
          });
        } finally {
          await settle(tx2.rollback(), 'tx2.rollback()');
        }
      },
    );
  },
);
