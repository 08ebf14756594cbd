import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { betterSqlite3, describeBetterSqlite3, sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 600;

/**
 * Attack: the statement cache every runner of the writer shares (better-sqlite3), and the
 * `query_only` reset, across schema changes, a data source destroyed and initialized again, a
 * cache of size 0 and two data sources.
 */
describe.each(sqliteEngines)('SQLite review 2: the shared statement cache ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  afterEach(() => t?.close());

  const start = async (extra: Record<string, unknown> = {}) => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(engine), ...extra }),
        TypeOrmContextModule.forRoot({ acquireTimeout: ACQUIRE }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    t = wrap(app, engine, app.get(DataSource));
    factory = app.get(SessionFactory);
    context = app.get(SessionContext);
  };

  const unitSelect = () =>
    factory.runInNewContext(
      () => context.session().query('SELECT * FROM example ORDER BY id') as Promise<object[]>,
    );

  it('a cached SELECT * after ALTER TABLE ADD COLUMN returns the new column', async () => {
    await start();
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'a' }));
    expect(Object.keys((await unitSelect())[0]!)).toEqual(['id', 'text']);
    await t.dataSource.query("ALTER TABLE example ADD COLUMN extra varchar DEFAULT 'x'");
    expect(await unitSelect()).toEqual([{ id: 1, text: 'a', extra: 'x' }]);
  });

  it('a cached statement after DROP and CREATE of its table reads the new table', async () => {
    await start();
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'a' }));
    expect(await unitSelect()).toHaveLength(1);
    await t.dataSource.query('DROP TABLE example');
    await t.dataSource.query(
      'CREATE TABLE example (id integer PRIMARY KEY AUTOINCREMENT, text varchar NOT NULL)',
    );
    expect(await unitSelect()).toEqual([]);
  });

  it('after dataSource.destroy() and initialize(), sessions run on the new database', async () => {
    await start();
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'old' }));
    await unitSelect();
    await factory.atomic(() => context.session().query('SELECT 1'), { readOnly: true });
    await t.dataSource.destroy();
    await t.dataSource.initialize();
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'new' }));
    expect((await unitSelect()).map((row) => (row as Example).text)).toEqual(['new']);
    // The read-only reset reads query_only on the new database, not the closed one.
    await factory.atomic(() => context.session().query('SELECT 1'), { readOnly: true });
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'writable' }));
    expect(await t.texts()).toEqual(['new', 'writable']);
  });

  it('a read-only unit that failed leaves the connection writable for the next', async () => {
    await start();
    const failed = await factory
      .atomic(
        async () => {
          await context.session().insert(Example, { text: 'refused' });
        },
        { readOnly: true },
      )
      .catch((error: Error) => error);
    expect(String(failed)).toMatch(/readonly|read-only|read only/i);
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'written' }));
    await t.dataSource.manager.insert(Example, { text: 'plain' });
    expect(await t.texts()).toEqual(['plain', 'written']);
  });

  it('a plain PRAGMA query_only = ON in one unit does not leak into the next', async () => {
    await start();
    await factory.runInNewContext(() => context.session().query('PRAGMA query_only = ON'));
    await factory.runInNewContext(() => context.session().insert(Example, { text: 'written' }));
    expect(await t.texts()).toEqual(['written']);
  });
});

// better-sqlite3 only where the suite claims it (see engines.ts).
describeBetterSqlite3(
  'SQLite review 2: statementCacheSize and two data sources (better-sqlite3)',
  () => {
    let t: TestApp | undefined;
    afterEach(() => t?.close());

    it('statementCacheSize: 0 works', async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ ...typeormOptions(betterSqlite3), statementCacheSize: 0 }),
          TypeOrmContextModule.forRoot({ acquireTimeout: ACQUIRE }),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      t = wrap(app, betterSqlite3, app.get(DataSource));
      const factory = app.get(SessionFactory);
      const context = app.get(SessionContext);
      for (let i = 0; i < 3; i++) {
        await factory.runInNewContext(() => context.session().insert(Example, { text: `r${i}` }));
      }
      expect(await t.texts()).toEqual(['r0', 'r1', 'r2']);
    });

    it('two data sources on two databases never share a cached statement', async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot(typeormOptions(betterSqlite3)),
          TypeOrmModule.forRoot(typeormOptions(betterSqlite3, 10, 'second')),
          TypeOrmContextModule.forRoot({
            acquireTimeout: ACQUIRE,
            dataSources: ['default', 'second'],
          }),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      t = wrap(app, betterSqlite3, app.get(DataSource));
      const second = app.get<DataSource>(getDataSourceToken('second'));
      const factory = app.get(SessionFactory);
      const context = app.get(SessionContext);
      await factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'first db' });
        await context.session('second').insert(Example, { text: 'second db' });
      });
      const read = (name: string) =>
        factory.runInNewContext(
          () => context.session(name).query('SELECT text FROM example') as Promise<object[]>,
        );
      expect(await read('default')).toEqual([{ text: 'first db' }]);
      expect(await read('second')).toEqual([{ text: 'second db' }]);
      expect(await second.query('SELECT text FROM example')).toEqual([{ text: 'second db' }]);
    });
  },
);
