import { Injectable, type Provider } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  InvalidOptionError,
  ModuleNotInitializedError,
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
  UnknownDataSourceError,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { typeormOptions } from '../support/create-app.js';
import { Example } from '../support/example.entity.js';
import { engines } from '../support/engines.js';

const engine = engines[0];

/** A job with a `@Transactional()` method. */
@Injectable()
class Job {
  @Transactional()
  run() {
    return 'ran';
  }
}

async function start(options: TypeOrmContextModuleOptions, providers: Provider[] = []) {
  const moduleRef = await Test.createTestingModule({
    imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot(options)],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  try {
    await app.init();
  } catch (error) {
    await app.close();
    throw error;
  }
  return app;
}

describe('bad input gets a clear error and loses nothing', () => {
  it('an unknown data source name fails at startup, naming the fix', async () => {
    const failure = start({ dataSources: ['default', 'reporting'] });
    await expect(failure).rejects.toBeInstanceOf(UnknownDataSourceError);
    await expect(failure).rejects.toThrow(
      /'reporting' is not registered.*TypeOrmModule\.forRoot\(\{ name: 'reporting'/,
    );
  });

  it.each([
    [{ dataSources: [] }, /dataSources/],
    [{ dataSources: ['default', 'default'] }, /distinct/],
    [{ autoCommit: 'yes' as unknown as boolean }, /autoCommit/],
    [{ beforeCommit: 'nope' as unknown as () => void }, /beforeCommit/],
    [{ acquireTimeout: 2 ** 31 }, /acquireTimeout.*at most 2147483647/],
    [{ acquireTimeout: Number.MAX_SAFE_INTEGER }, /acquireTimeout.*at most 2147483647/],
    [
      { defaultTransactionOptions: { propagation: Propagation.REQUIRES_NEW } },
      /'propagation' in defaultTransactionOptions/,
    ],
    [{ defaultTransactionOptions: { timeout: -5 } }, /timeout/],
    [{ defaultTransactionOptions: { isolationLevel: 'SNAPSHOT' } }, /isolationLevel/],
    [{ defaultTransactionOptions: 'SERIALIZABLE' }, /defaultTransactionOptions/],
    [{ plainTypeorm: 'yes' }, /plainTypeorm.*'warn', 'join' or 'off'/s],
    [{ plainTypeorm: true }, /plainTypeorm/],
    [
      { requestId: 'x-request-id' },
      /requestId.*a function \(request\) => string \| number \| undefined, or false/s,
    ],
    [{ slowTransactionMs: -1 }, /slowTransactionMs.*0 or more/],
    [{ slowTransactionMs: Number.NaN }, /slowTransactionMs/],
    [{ slowTransactionMs: '500' }, /slowTransactionMs.*a number of milliseconds/],
    [{ slowTransactionMs: Infinity }, /slowTransactionMs.*at most 2147483647/],
    [{ maxReplicaLag: 0 }, /maxReplicaLag.*greater than 0/],
    [{ maxReplicaLag: '1s' }, /maxReplicaLag.*a number of milliseconds/],
    [
      { consistency: 'x-token' },
      /consistency.*\{ header\?, cookie\?, wait\?, behind\?, refresh\? \}/,
    ],
    [{ consistency: { headers: 'x-token' } }, /'headers' in the consistency option/],
    [{ consistency: { header: 'x token' } }, /consistency\.header.*a header or cookie name/],
    [{ consistency: { header: true } }, /consistency\.header/],
    [{ consistency: { cookie: 'a;b' } }, /consistency\.cookie/],
    [{ consistency: { wait: -1 } }, /consistency\.wait.*0 or more/],
    [{ consistency: { behind: 'replica' } }, /consistency\.behind.*'primary' or 'fail'/],
    [{ consistency: { refresh: 0 } }, /consistency\.refresh.*greater than 0/],
  ])('module option %j is refused at startup', async (options, message) => {
    const failure = start(options);
    await expect(failure).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(failure).rejects.toThrow(message);
  });

  it('@Transactional() after app.close() says the module has shut down, not that it never started', async () => {
    const app = await start({}, [Job]);
    const job = app.get(Job);
    await expect(job.run()).resolves.toBe('ran');
    await app.close();
    const late = job.run();
    await expect(late).rejects.toBeInstanceOf(ModuleNotInitializedError);
    await expect(late).rejects.toThrow(/has shut down.*after app\.close\(\)/);
  });

  it('@Transactional() on an instance no app created, outside any context, says how to fix it', async () => {
    const app = await start({}, [Job]);
    try {
      const stray = new Job().run();
      await expect(stray).rejects.toBeInstanceOf(ModuleNotInitializedError);
      await expect(stray).rejects.toThrow(
        /Job\.run\(\) is @Transactional\(\).*app\.get\(\.\.\.\).*runInNewContext\(\)/,
      );
      const inContext = app.get(SessionFactory).runInNewContext(() => new Job().run());
      await expect(inContext).resolves.toBe('ran');
    } finally {
      await app.close();
    }
  });

  describe('at call time', () => {
    let app: Awaited<ReturnType<typeof start>>;
    beforeAll(async () => {
      app = await start({});
    });
    afterAll(() => app.close());

    it('an unknown data source name in a context says which names exist', async () => {
      await app.get(SessionFactory).runInNewContext(() => {
        expect(() => app.get(SessionContext).session('reporting')).toThrow(UnknownDataSourceError);
        expect(() => app.get(SessionContext).session('reporting')).toThrow(/knows 'default'/);
      });
    });

    it.each([
      [{ timeout: -5 }, /timeout/],
      [{ timeout: 2 ** 31 }, /timeout.*at most 2147483647/],
      [{ timeout: 1e12, propagation: Propagation.REQUIRES_NEW }, /timeout.*at most 2147483647/],
      [{ retry: 1.5 }, /retry/],
      [{ propagation: 'SOMETIMES' as Propagation }, /Propagation/],
      [{ isolationLevel: 'SNAPSHOT' as 'SERIALIZABLE' }, /isolationLevel/],
      [{ dataSource: 'reporting' }, /Unknown data source/],
    ])('transaction option %j is refused before any work', async (options, message) => {
      let ran = false;
      await expect(
        app.get(SessionFactory).atomic(() => {
          ran = true;
        }, options),
      ).rejects.toThrow(message);
      expect(ran).toBe(false);
    });

    it('@Transactional() with nonsense options fails when the class is defined', () => {
      expect(() => Transactional({ propagation: 'ALWAYS' as Propagation })).toThrow(
        InvalidOptionError,
      );
    });

    it('a timeout above what a Node timer can wait fails when the class is defined', () => {
      // Node clamps a longer timer to 1 ms: such a transaction would time out at once.
      expect(() => Transactional({ timeout: 2 ** 31 })).toThrow(InvalidOptionError);
      expect(() => Transactional({ timeout: 2 ** 31 })).toThrow(/at most 2147483647/);
    });

    it('sessionContext.atomic() refuses a timeout above 2^31-1 ms before any work', async () => {
      let ran = false;
      const atomic = app.get(SessionFactory).runInNewContext(() =>
        app.get(SessionContext).atomic(
          () => {
            ran = true;
          },
          { timeout: 2 ** 31, propagation: Propagation.REQUIRES_NEW },
        ),
      );
      await expect(atomic).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(atomic).rejects.toThrow(/timeout.*at most 2147483647/);
      expect(ran).toBe(false);
    });

    it('the longest timeout a Node timer can wait (2^31-1 ms) is accepted and does not expire early', async () => {
      const dataSource = app.get(DataSource);
      await dataSource.query('DELETE FROM example');
      await app.get(SessionFactory).atomic(
        async (manager) => {
          await manager.query(engine.sleepSql(0.05));
          await manager.insert(Example, { text: 'longest timeout' });
        },
        { timeout: 2 ** 31 - 1 },
      );
      const rows: Array<{ n: number | string }> = await dataSource.query(
        "SELECT count(*) AS n FROM example WHERE text = 'longest timeout'",
      );
      expect(Number(rows[0]?.n)).toBe(1);
      await dataSource.query('DELETE FROM example');
    });

    it.each([[2 ** 31], [-1], [Number.NaN]])(
      'TestTransaction.start() refuses settleTimeout %p before taking a connection',
      async (settleTimeout) => {
        const start = TestTransaction.start(app, { settleTimeout });
        await expect(start).rejects.toBeInstanceOf(InvalidOptionError);
        await expect(start).rejects.toThrow(/settleTimeout/);
      },
    );
  });
});
