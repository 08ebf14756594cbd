import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import {
  DataSource,
  type EntityManager,
  type MigrationInterface,
  type QueryRunner,
  type Repository,
  type TreeRepository,
} from 'typeorm';
import {
  InjectSession,
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { wrap, type TestApp } from '../support/create-app.js';
import { backendId, engines, type Engine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  clear,
  entities,
  R2Author,
  R2BookSubscriber,
  R2Node,
  recordingLogger,
  within,
} from './review2-app.js';

/** A migration run at startup (migrationsRun: true), through its query runner and the data source. */
class R2Migration1700000000000 implements MigrationInterface {
  name = 'R2Migration1700000000000';
  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('SELECT 1');
    await queryRunner.manager.find(Example);
    await queryRunner.connection.manager.count(Example);
  }
  async down(): Promise<void> {}
}

/** This library's ways in: none of them may warn. */
@Injectable()
class OwnWays {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    @InjectRepository(R2Node) readonly nodes: TreeRepository<R2Node>,
    @InjectSession() readonly session: EntityManager,
    readonly context: SessionContext,
    readonly factory: SessionFactory,
  ) {}

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async requiresNew(): Promise<void> {
    await this.examples.insert({ text: 'requires_new' });
  }

  @Transactional({ propagation: Propagation.NESTED })
  async nested(): Promise<void> {
    await this.session.insert(Example, { text: 'nested' });
  }

  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async notSupported(): Promise<number> {
    return this.examples.count();
  }

  @Transactional({ readOnly: true, propagation: Propagation.REQUIRES_NEW })
  async readOnly(): Promise<number> {
    return this.examples.count();
  }
}

@Module({
  imports: [TypeOrmContextModule.forFeature([Example, R2Node])],
  providers: [OwnWays],
  exports: [OwnWays],
})
class OwnModule {}

async function build(
  engine: Engine,
  context: TypeOrmContextModuleOptions,
  warnings: string[],
  extra: object = {},
) {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        ...engine.options,
        entities,
        subscribers: [R2BookSubscriber],
        synchronize: true,
        poolSize: 10,
        logging: false,
        ...extra,
      }),
      TypeOrmContextModule.forRoot(context),
      OwnModule,
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: recordingLogger(warnings) });
  await app.init();
  return wrap(app, engine, app.get(DataSource));
}

const plainWarnings = (warnings: string[]) =>
  warnings.filter((w) => w.includes('Plain TypeORM code'));

describe.each(engines)(
  "plainTypeorm 'warn': never for this library's own ways ($name)",
  (engine) => {
    const warnings: string[] = [];
    let t: TestApp;

    beforeAll(async () => {
      t = await build(engine, { plainTypeorm: 'warn' }, warnings, {
        migrations: [R2Migration1700000000000],
        migrationsRun: true,
        migrationsTableName: 'r2_migrations',
      });
      await clear(t.dataSource);
    });
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await t.dataSource.query('DELETE FROM r2_migrations');
      await t.close();
    });

    it('startup (synchronize, migrationsRun) warned nothing', () => {
      expect(plainWarnings(warnings)).toEqual([]);
    });

    it('forFeature() repositories, a TreeRepository, @InjectSession(), session(), @Transactional, the factory and TestTransaction warn nothing', async () => {
      const own = t.app.get(OwnWays);
      await within(
        own.factory.runInNewContext(async () => {
          await own.examples.insert({ text: 'repo' });
          await own.examples.findOneBy({ text: 'repo' });
          await own.examples.createQueryBuilder('e').getMany();
          await own.examples.preload({ id: 1 });
          const root = await own.nodes.save(own.nodes.create({ name: 'root' }));
          await own.nodes.save(own.nodes.create({ name: 'leaf', parent: root }));
          await own.nodes.findTrees();
          await own.nodes.findDescendants(root);
          await own.session.insert(Example, { text: 'injected' });
          await own.session.transaction((m) => m.insert(Example, { text: 'savepoint' }));
          await own.context.session().query('SELECT 1');
          await own.context
            .session()
            .createQueryBuilder(Example, 'e')
            .stream()
            .then((s) => s.destroy());
          await own.requiresNew();
          await own.nested();
          await own.notSupported();
          await own.readOnly();
          await own.context.atomic(async (m) => m.insert(Example, { text: 'atomic' }));
          await own.factory.atomic(async (m) => m.insert(Example, { text: 'factory_atomic' }));
          const session = own.factory.open();
          await session.manager.insert(Example, { text: 'opened' });
          await session.commit();
          await own.examples.extend({}).count();
        }),
      );
      const test = await TestTransaction.start(t.app);
      try {
        await own.factory.runInNewContext(async () => {
          await own.examples.insert({ text: 'under_test' });
        });
        await t.dataSource.getRepository(Example).count(); // the test body: plain, not in a unit
      } finally {
        await test.rollback();
      }
      expect(plainWarnings(warnings)).toEqual([]);
    });

    it('a plain repository in a unit is named once per call site', async () => {
      const own = t.app.get(OwnWays);
      const plain = t.dataSource.getRepository(R2Author);
      for (let i = 0; i < 3; i++) {
        await own.factory.runInNewContext(async () => {
          await plain.count(); // site A
          await plain.count(); // site B
        });
      }
      const sites = plainWarnings(warnings);
      expect(sites).toHaveLength(2);
      expect(sites.every((w) => w.includes('warn-and-apps.e2e-spec'))).toBe(true);
      warnings.length = 0;
    });
  },
);

describe.each(engines)('plainTypeorm and several apps in one process ($name)', (engine) => {
  it("app.close(), then a second app of the same module: plain code joins the second app's units", async () => {
    const warnings: string[] = [];
    const first = await build(engine, { plainTypeorm: 'join' }, warnings);
    const firstDs = first.dataSource;
    await first.close();
    const second = await build(engine, { plainTypeorm: 'join' }, warnings);
    try {
      await clear(second.dataSource);
      const factory = second.app.get(SessionFactory);
      const context = second.app.get(SessionContext);
      const seen = await within(
        factory.runInNewContext(async () => {
          await second.dataSource.getRepository(Example).insert({ text: 'second' });
          return {
            plain: [
              await txid(engine, second.dataSource.manager),
              await backendId(engine, second.dataSource.manager),
            ],
            session: [
              await txid(engine, context.session()),
              await backendId(engine, context.session()),
            ],
            firstIsUp: firstDs.isInitialized,
          };
        }),
      );
      expect(seen.plain).toEqual(seen.session);
      expect(seen.plain[0]).not.toBeNull();
      expect(seen.firstIsUp).toBe(false);
      await second.expectClean();
    } finally {
      await second.close();
    }
  });

  it("one DataSource instance shared by two apps in turn (dataSourceFactory): the second app's units, never the first's", async () => {
    const shared = new DataSource({
      ...engine.options,
      entities,
      subscribers: [R2BookSubscriber],
      synchronize: true,
      poolSize: 10,
      logging: false,
    } as never);
    const buildShared = async (context: TypeOrmContextModuleOptions) => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRootAsync({
            useFactory: () => ({ ...engine.options }),
            dataSourceFactory: async () => (shared.isInitialized ? shared : shared.initialize()),
          }),
          TypeOrmContextModule.forRoot(context),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      return wrap(app, engine, app.get(DataSource));
    };
    const first = await buildShared({ plainTypeorm: 'join' });
    await first.close();
    const second = await buildShared({ plainTypeorm: 'join' });
    try {
      expect(second.dataSource).toBe(shared);
      await clear(shared);
      const context = second.app.get(SessionContext);
      const seen = await within(
        second.app.get(SessionFactory).runInNewContext(async () => {
          await shared.getRepository(Example).insert({ text: 'shared' });
          return [await txid(engine, shared.manager), await txid(engine, context.session())];
        }),
      );
      expect(seen[0]).not.toBeNull();
      expect(seen[0]).toBe(seen[1]);
      // Outside any unit, plain code is plain TypeORM, the closed first app's runtime in the way or not.
      expect(await shared.getRepository(Example).countBy({ text: 'shared' })).toBe(1);
      await second.expectClean();
    } finally {
      await second.close();
      if (shared.isInitialized) await shared.destroy();
    }
  });

  it("two apps at once, 'join' and 'warn': each app's plain code does what its own option says", async () => {
    const joinWarnings: string[] = [];
    const warnWarnings: string[] = [];
    const joining = await build(engine, { plainTypeorm: 'join' }, joinWarnings);
    const warning = await build(engine, { plainTypeorm: 'warn' }, warnWarnings);
    try {
      await clear(joining.dataSource);
      const run = (t: TestApp, text: string) =>
        t.app.get(SessionFactory).runInNewContext(async () => {
          await t.dataSource.getRepository(Example).insert({ text });
          await new Promise((resolve) => setTimeout(resolve, 50));
          await t.dataSource.getRepository(Example).insert({ text });
          throw new Error('roll back');
        });
      const outcomes = await within(
        Promise.allSettled([
          run(joining, 'joined'),
          run(warning, 'warned'),
          run(joining, 'joined'),
          run(warning, 'warned'),
        ]),
      );
      expect(outcomes.map((o) => o.status)).toEqual([
        'rejected',
        'rejected',
        'rejected',
        'rejected',
      ]);
      expect(await joining.texts()).toEqual(['warned', 'warned', 'warned', 'warned']);
      expect(plainWarnings(joinWarnings).length + plainWarnings(warnWarnings).length).toBe(2);
      await joining.expectClean();
      await warning.expectClean();
    } finally {
      await joining.close();
      await warning.close();
    }
  });
});
