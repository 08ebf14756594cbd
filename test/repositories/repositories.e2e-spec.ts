import { Controller, Get, Inject, Module, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken, getRepositoryToken } from '@nestjs/typeorm';
import { type DataSource, EntityManager, Repository } from 'typeorm';
import {
  SessionContext,
  SessionContextEndedError,
  SessionFactory,
  TypeOrmContextModule,
  UnknownDataSourceError,
} from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, backendId, checkedOut, engines, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  customMethods,
  EXAMPLE_REPOSITORY,
  type ExampleRepository,
  ExamplesService,
} from './examples.service.js';

let engine: Engine;
const seen: Record<string, unknown> = {};

@Controller()
class ExamplesController {
  constructor(
    private readonly service: ExamplesService,
    private readonly context: SessionContext,
    @Inject(EXAMPLE_REPOSITORY) private readonly custom: ExampleRepository,
  ) {}

  @Post('three-ways')
  async threeWays() {
    await this.service.insertThreeWays('request');
    seen.sameManager = this.service.examples.manager === this.context.session();
    seen.txids = [
      await txid(engine, this.service.examples.manager),
      await txid(engine, this.context.session()),
    ];
    seen.outside = Number(
      (await this.service.dataSource.query('SELECT count(*) AS n FROM example'))[0].n,
    );
    return 'ok';
  }

  @Post('three-ways-then-fail')
  async threeWaysThenFail() {
    await this.service.insertThreeWays('failed');
    throw new Error('handler failed after writing');
  }

  @Post('custom')
  async customRepository() {
    await this.custom.addText('custom');
    seen.txids = [
      await txid(engine, this.custom.manager),
      await txid(engine, this.context.session()),
    ];
    return 'ok';
  }

  @Post('analytics')
  async analytics() {
    await this.service.analytics.insert({ text: 'analytics' });
    seen.backends = [
      await backendId(engine, this.service.analytics.manager),
      await backendId(engine, this.context.session('analytics')),
      await backendId(engine, this.context.session()),
    ];
    return 'ok';
  }

  @Get('inject-session')
  async injectSession() {
    await this.service.session.insert(Example, { text: 'injected' });
    seen.isManager = this.service.session instanceof EntityManager;
    seen.txids = [
      await txid(engine, this.service.session),
      await txid(engine, this.context.session()),
    ];
    seen.backends = [
      await backendId(engine, this.service.analyticsSession),
      await backendId(engine, this.context.session('analytics')),
    ];
    return 'ok';
  }

  @Post('requires-new-then-fail')
  async requiresNewThenFail() {
    await this.service.examples.insert({ text: 'outer' });
    await this.service.ownTransaction('inner');
    throw new Error('outer failed');
  }

  @Post('late')
  late() {
    const late = new Promise((resolve) => setTimeout(resolve, 50)).then(() =>
      this.service.examples.count(),
    );
    late.catch(() => undefined); // handled now: it may reject before the test awaits it
    seen.late = late;
    return 'ok';
  }
}

@Module({
  imports: [
    TypeOrmContextModule.forFeature([Example]),
    TypeOrmContextModule.forFeature([Example], 'analytics'),
  ],
  controllers: [ExamplesController],
  providers: [
    ExamplesService,
    {
      provide: EXAMPLE_REPOSITORY,
      useFactory: (examples: Repository<Example>) => examples.extend(customMethods),
      inject: [getRepositoryToken(Example)],
    },
  ],
})
class ExamplesModule {}

describe.each(engines)('context-aware repositories ($name)', (current) => {
  let t: TestApp;
  let analytics: DataSource;
  let service: ExamplesService;

  beforeAll(async () => {
    engine = current;
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(current)),
        TypeOrmModule.forRoot({ ...typeormOptions(current, 10, 'analytics'), synchronize: false }),
        TypeOrmContextModule.forRoot({ dataSources: ['default', 'analytics'] }),
        ExamplesModule,
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    analytics = app.get(getDataSourceToken('analytics'));
    t = wrap(app, current, app.get(getDataSourceToken()));
    service = app.get(ExamplesService);
  });
  beforeEach(async () => {
    for (const key of Object.keys(seen)) delete seen[key];
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(async () => {
    await t.expectClean();
    expect(checkedOut(analytics)).toBe(0);
  });
  afterAll(() => t.close());

  it('save(), createQueryBuilder() and repo.manager run in the request session', async () => {
    await t.http().post('/three-ways').expect(201);
    expect(seen.sameManager).toBe(true);
    const [repositoryTxid, sessionTxid] = seen.txids as string[];
    expect(repositoryTxid).not.toBeNull();
    expect(repositoryTxid).toBe(sessionTxid);
    expect(seen.outside).toBe(0);
    expect(await t.texts()).toEqual(['request_builder', 'request_manager', 'request_save']);
  });

  it('all three are rolled back when the handler fails', async () => {
    await t.http().post('/three-ways-then-fail').expect(500);
    expect(await t.rows()).toBe(0);
  });

  it('a custom repository made with .extend() runs in the request session', async () => {
    await t.http().post('/custom').expect(201);
    const [repositoryTxid, sessionTxid] = seen.txids as string[];
    expect(repositoryTxid).not.toBeNull();
    expect(repositoryTxid).toBe(sessionTxid);
    expect(await t.texts()).toEqual(['custom']);
  });

  it('a repository of a named data source uses that data source’s session', async () => {
    await t.http().post('/analytics').expect(201);
    const [repository, session, main] = seen.backends as string[];
    expect(repository).toBe(session);
    expect(repository).not.toBe(main);
    expect(await t.texts()).toEqual(['analytics']);
  });

  it('@InjectSession() is an EntityManager resolving to the current session', async () => {
    await t.http().get('/inject-session').expect(200);
    expect(seen.isManager).toBe(true);
    const [injectedTxid, sessionTxid] = seen.txids as string[];
    expect(injectedTxid).not.toBeNull();
    expect(injectedTxid).toBe(sessionTxid);
    const [injectedBackend, analyticsBackend] = seen.backends as string[];
    expect(injectedBackend).toBe(analyticsBackend);
    expect(await t.texts()).toEqual(['injected']);
  });

  it('inside a REQUIRES_NEW block the repository follows the block’s own transaction', async () => {
    await t.http().post('/requires-new-then-fail').expect(500);
    expect(await t.texts()).toEqual(['inner']);
  });

  it('in runInNewContext() the repository shares the context’s transaction', async () => {
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    await factory.runInNewContext(async () => {
      await service.examples.insert({ text: 'job' });
      expect(await txid(engine, service.examples.manager)).toBe(
        await txid(engine, context.session()),
      );
      expect(await t.rows()).toBe(0);
    });
    expect(await t.texts()).toEqual(['job']);
  });

  it('outside any context the repository and the session write through the data source, each statement on its own', async () => {
    // Warned about by default (outsideUnit: 'warn'): see outside-unit.e2e-spec.ts.
    await service.examples.save({ text: 'script' });
    await service.session.insert(Example, { text: 'script_manager' });
    expect(service.examples.manager).toBeInstanceOf(EntityManager);
    expect(service.examples.manager.queryRunner).toBeUndefined();
    expect(service.examples.manager.connection.options).toBe(t.dataSource.options);
    expect(await t.texts()).toEqual(['script', 'script_manager']);
    expect(await service.examples.countBy({ text: 'script' })).toBe(1);
  });

  it('used after its request ended, the repository throws and loses nothing', async () => {
    await t.http().post('/late').expect(201);
    await expect(seen.late).rejects.toThrow(SessionContextEndedError);
  });

  it('patches nothing: a repository from dataSource.getRepository() is not context-aware', async () => {
    const plain = t.dataSource.getRepository(Example);
    await t.app.get(SessionFactory).runInNewContext(async () => {
      await plain.insert({ text: 'plain' });
      expect(plain.manager).toBe(t.dataSource.manager);
      expect(await t.rows()).toBe(1);
    });
  });

  it('forFeature() with a data source the context module does not know fails at startup', async () => {
    // Data sources that never connect: the failing compile() has nothing to close.
    const idle = (name?: string) => ({
      ...typeormOptions(current, 1, name),
      manualInitialization: true,
    });
    const failure = Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(idle()),
        TypeOrmModule.forRoot(idle('reports')),
        TypeOrmContextModule.forRoot(),
        TypeOrmContextModule.forFeature([Example], 'reports'),
      ],
    }).compile();
    await expect(failure).rejects.toBeInstanceOf(UnknownDataSourceError);
    await expect(failure).rejects.toThrow(/Unknown data source 'reports'.*dataSources/);
  });
});
