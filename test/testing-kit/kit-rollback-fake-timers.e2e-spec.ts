import { jest } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { typeormOptions } from '../support/create-app.js';
import { engines } from '../support/engines.js';

/** The real timer, kept before any test fakes the clock. */
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** `work`'s outcome, or 'hung' after `ms` of real time. */
function realDeadline<T>(work: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    work.finally(() => realClearTimeout(timer)),
    new Promise<'hung'>((resolve) => (timer = realSetTimeout(() => resolve('hung'), ms))),
  ]);
}

/**
 * (Found by review 25.) rollback() with work still running waits for it on real time under
 * jest.useFakeTimers() (the default, which fakes setTimeout and Date): its settle() polled with
 * the global setTimeout and Date.now(), and never returned, even once the work had ended.
 */
describe.each(engines.filter((e) => e.name === 'postgres'))(
  'testing kit: rollback() with work still running under jest.useFakeTimers() ($name)',
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
    });
    afterEach(() => jest.useRealTimers());
    afterAll(async () => {
      await app.close();
    });

    it('rollback() settles (the work ends 300 ms later, well within settleTimeout)', async () => {
      const tx = await TestTransaction.start(app);
      const factory = app.get(SessionFactory);
      const context = app.get(SessionContext);
      let letGo!: () => void;
      const proceed = new Promise<void>((resolve) => (letGo = resolve));
      const job = factory
        .runInNewContext(async () => {
          await context.session().query('SELECT 1');
          await proceed;
        })
        .catch(() => undefined);
      await new Promise((resolve) => realSetTimeout(resolve, 50));
      jest.useFakeTimers();
      realSetTimeout(letGo, 300); // the work ends on its own, in real time
      const rollback = tx.rollback().then(
        () => 'rolled back',
        (error: Error) => error.name,
      );
      const ended = await realDeadline(rollback, 4000);
      // Clean-up only: drive the fake clock until rollback() is through, so the app can close.
      let done = false;
      void rollback.finally(() => (done = true));
      for (let i = 0; i < 200 && !done; i++) {
        jest.advanceTimersByTime(10);
        await new Promise((resolve) => realSetTimeout(resolve, 5));
      }
      jest.useRealTimers();
      await job;
      expect(ended).toBe('rolled back');
      expect(dataSource.isInitialized).toBe(true);
    });
  },
);
