import { jest } from '@jest/globals';
import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { logger } from '../../src/logger.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, engines, isolationOf, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp } from '../correctness/support-b.js';

/** A manager a provider made at DI time, as `useFactory: (ds) => ds.createEntityManager()` does. */
const MADE_MANAGER = Symbol('MADE_MANAGER');

/** A typeorm-transactional-style service: a plain repository and plain managers. */
@Injectable()
class PlainService {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    readonly dataSource: DataSource,
    @Inject(MADE_MANAGER) readonly made: EntityManager,
  ) {}
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Review of `plainTypeorm: 'join'` (docs/repositories.md "Plain TypeORM code inside a unit of
 * work"): plain TypeORM code runs in the unit's session, as a forFeature() repository does.
 */
describe.each(engines)("plainTypeorm: 'join', review ($name)", (engine: Engine) => {
  let t: TestApp | undefined;
  let plain: PlainService;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      imports: [TypeOrmModule.forFeature([Example])],
      providers: [
        PlainService,
        {
          provide: MADE_MANAGER,
          useFactory: (dataSource: DataSource) => dataSource.createEntityManager(),
          inject: [DataSource],
        },
      ],
      context: { plainTypeorm: 'join' },
    });
    plain = t.app.get(PlainService);
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });

  beforeEach(async () => {
    await t!.dataSource.query('DELETE FROM example');
  });

  afterAll(() => closeApp(t, engine));

  it('a manager a provider made with dataSource.createEntityManager() at DI time joins the unit: rolled back with it', async () => {
    // The brief's promise: "managers from createEntityManager()" run inside every unit. A
    // provider's factory runs when the module is instantiated, before the module's onModuleInit.
    const failure = new Error('unit fails');
    await expect(
      factory.runInNewContext(async () => {
        // save() takes a query runner of the data source itself (not through createQueryBuilder).
        await plain.made.save(Example, { text: 'made-at-di' });
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
  });

  it('a transaction() of a manager made at DI time is a savepoint of the unit: its connection and transaction', async () => {
    const [session, made] = await factory.runInNewContext(async () => {
      const manager = context.session();
      await manager.insert(Example, { text: 'tx' });
      const ids = async (m: EntityManager) => [await backendId(engine, m), await txid(engine, m)];
      return [await ids(manager), await plain.made.transaction((em) => ids(em))];
    });
    expect(made).toEqual(session);
    await t!.expectClean();
  });

  it('a plain transaction() whose callback writes through the plain repository and fails is undone alone; the unit commits the rest', async () => {
    await factory.runInNewContext(async () => {
      await plain.examples.insert({ text: 'before' });
      await plain.dataSource
        .transaction(async () => {
          await plain.examples.insert({ text: 'inside-failed' });
          throw new Error('savepoint fails');
        })
        .catch(() => undefined);
      await plain.examples.insert({ text: 'after' });
    });
    expect(await t!.texts()).toEqual(['after', 'before']);
    await t!.expectClean();
  });

  it('concurrent plain transaction()s on one session: the failing one does not undo the one that succeeded', async () => {
    await factory.runInNewContext(async () => {
      await Promise.allSettled([
        plain.dataSource.transaction(async (em) => {
          await em.insert(Example, { text: 'ok' });
          await sleep(30);
        }),
        plain.dataSource.transaction(async (em) => {
          await sleep(5);
          await em.insert(Example, { text: 'fails' });
          throw new Error('second fails');
        }),
        plain.examples.insert({ text: 'outer' }),
      ]);
    });
    expect(await t!.texts()).toEqual(['ok', 'outer']);
    await t!.expectClean();
  });

  it('a plain transaction() nested in a plain transaction(): the inner failure is undone, the outer kept', async () => {
    await factory.runInNewContext(async () => {
      await plain.dataSource.transaction(async (outer) => {
        await outer.insert(Example, { text: 'outer' });
        await plain.dataSource
          .transaction(async (inner) => {
            await inner.insert(Example, { text: 'inner' });
            throw new Error('inner fails');
          })
          .catch(() => undefined);
        await plain.dataSource.manager.transaction(async (inner) => {
          await inner.insert(Example, { text: 'inner-kept' });
        });
      });
    });
    expect(await t!.texts()).toEqual(['inner-kept', 'outer']);
    await t!.expectClean();
  });

  it("plain transaction('SERIALIZABLE', cb) as the unit's first statement: runs SERIALIZABLE, or says that the level was ignored", async () => {
    const warn = jest.spyOn(logger, 'warn');
    try {
      const isolation = await factory.runInNewContext(() =>
        plain.dataSource.transaction('SERIALIZABLE', (em) => isolationOf(engine, em)),
      );
      const warned = warn.mock.calls.some((call) => /isolation/i.test(String(call[0])));
      expect({ isolation, warned }).toEqual(
        isolation === 'SERIALIZABLE' ? { isolation, warned } : { isolation, warned: true },
      );
    } finally {
      warn.mockRestore();
    }
    await t!.expectClean();
  });

  it('dataSource.sql / manager.sql tagged templates, upsert, update, existsBy, findOneByOrFail join and roll back', async () => {
    const failure = new Error('unit fails');
    await expect(
      factory.runInNewContext(async () => {
        // The sql tagged template came with TypeORM 0.3.22: on older ones, query() does the same.
        if (typeof plain.dataSource.sql === 'function') {
          await plain.dataSource.sql`INSERT INTO example (text) VALUES (${'sql-tag'})`;
          await plain.dataSource.manager.sql`INSERT INTO example (text) VALUES (${'sql-tag-2'})`;
        } else {
          await plain.dataSource.query("INSERT INTO example (text) VALUES ('sql-tag')");
          await plain.dataSource.manager.query("INSERT INTO example (text) VALUES ('sql-tag-2')");
        }
        const { identifiers } = await plain.examples.upsert({ text: 'upserted' }, ['id']);
        await plain.examples.update({ id: identifiers[0]!.id as number }, { text: 'updated' });
        expect(await plain.examples.existsBy({ text: 'updated' })).toBe(true);
        await plain.examples.findOneByOrFail({ text: 'sql-tag-2' });
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
  });
});
