import { Injectable, type Provider } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
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
import { typeormOptions } from '../support/create-app.js';
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
  });
});
