import { getRepositoryToken } from '@nestjs/typeorm';
import type { Repository, TreeRepository } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { backendId, engines, txid } from '../support/engines.js';
import {
  count,
  createReview2App,
  holder,
  R2Active,
  R2Audit,
  R2Author,
  R2Book,
  R2Listened,
  R2Node,
  within,
} from './review2-app.js';

class Refused extends Error {}

describe.each(engines)("plainTypeorm 'join': TypeORM features inside a unit ($name)", (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    t = await createReview2App(engine, { context: { plainTypeorm: 'join' } });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
    holder.dataSource = t.dataSource;
    R2Active.useDataSource(t.dataSource);
  });
  beforeEach(async () => {
    holder.hook = 'off';
    const { clear } = await import('./review2-app.js');
    await clear(t.dataSource);
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  /** Runs `fn` in a unit that is then rolled back; returns what `fn` returned. */
  async function rolledBack<T>(fn: () => Promise<T>): Promise<T> {
    let result: T | undefined;
    await expect(
      within(
        factory.runInNewContext(async () => {
          result = await fn();
          throw new Refused('roll back');
        }),
      ),
    ).rejects.toBeInstanceOf(Refused);
    return result as T;
  }

  /** The session's transaction and connection, and those plain `dataSource.query()` sees. */
  async function sameTransaction(): Promise<void> {
    const session = context.session();
    expect(await txid(engine, t.dataSource.manager)).toBe(await txid(engine, session));
    expect(await backendId(engine, t.dataSource.manager)).toBe(await backendId(engine, session));
  }

  it('a lazy relation (Promise<T>) of an entity loaded by a plain repository reads the unit’s rows', async () => {
    const seen = await rolledBack(async () => {
      const authors = t.app.get<Repository<R2Author>>(getRepositoryToken(R2Author));
      const books = t.app.get<Repository<R2Book>>(getRepositoryToken(R2Book));
      const author = await authors.save({ name: 'ann' });
      const created = books.create({ title: 'b1' });
      created.author = Promise.resolve(author);
      await books.save(created);
      await sameTransaction();
      const loaded = await books.findOneByOrFail({ title: 'b1' });
      const viaLoaded = await loaded.author;
      // An entity made with create() (no query runner of its own) loads through the data source.
      const bare = books.create({ id: loaded.id });
      const viaBare = await bare.author;
      return [viaLoaded?.name, viaBare?.name];
    });
    expect(seen).toEqual(['ann', 'ann']);
    expect(await count(t.dataSource, 'r2_author')).toBe(0);
    expect(await count(t.dataSource, 'r2_book')).toBe(0);
  });

  it("eager relations load in the unit, with relationLoadStrategy 'join' and 'query'", async () => {
    const seen = await rolledBack(async () => {
      const editor = await t.dataSource.manager.save(R2Author, { name: 'ed' });
      await t.dataSource.getRepository(R2Book).save({ title: 'b2', editor });
      const books = t.dataSource.getRepository(R2Book);
      const joined = await books.find({ where: { title: 'b2' } });
      const queried = await books.find({ where: { title: 'b2' }, relationLoadStrategy: 'query' });
      const lazyQueried = await books.find({
        where: { title: 'b2' },
        relations: { author: true, editor: true },
        relationLoadStrategy: 'query',
      });
      return [joined[0]?.editor?.name, queried[0]?.editor?.name, lazyQueried[0]?.editor?.name];
    });
    expect(seen).toEqual(['ed', 'ed', 'ed']);
    expect(await count(t.dataSource, 'r2_book')).toBe(0);
  });

  it('a TreeRepository from TypeOrmModule.forFeature() writes and reads the tree in the unit', async () => {
    const seen = await rolledBack(async () => {
      const nodes = t.app.get<TreeRepository<R2Node>>(getRepositoryToken(R2Node));
      const root = await nodes.save(nodes.create({ name: 'root' }));
      const child = await nodes.save(nodes.create({ name: 'child', parent: root }));
      await nodes.save(nodes.create({ name: 'grandchild', parent: child }));
      await sameTransaction();
      const trees = await nodes.findTrees();
      const descendants = await nodes.findDescendants(root);
      const ancestors = await nodes.countAncestors(child);
      return {
        tree: trees.map((n) => [
          n.name,
          n.children.map((c) => [c.name, c.children.map((g) => g.name)]),
        ]),
        descendants: descendants.map((n) => n.name).sort(),
        ancestors,
      };
    });
    expect(seen).toEqual({
      tree: [['root', [['child', ['grandchild']]]]],
      descendants: ['child', 'grandchild', 'root'],
      ancestors: 2,
    });
    expect(await count(t.dataSource, 'r2_node')).toBe(0);
    expect(await count(t.dataSource, 'r2_node_closure')).toBe(0);
  });

  it('a custom repository made with Repository.extend() runs in the unit', async () => {
    const audits = t.app.get<Repository<R2Audit>>(getRepositoryToken(R2Audit)).extend({
      async note(this: Repository<R2Audit>, note: string) {
        await this.insert({ note });
        return this.countBy({ note });
      },
      async viaBuilder(this: Repository<R2Audit>, note: string) {
        return this.createQueryBuilder('a').where('a.note = :note', { note }).getCount();
      },
    });
    const seen = await rolledBack(async () => {
      const first = await audits.note('x');
      await sameTransaction();
      return [
        first,
        await audits.viaBuilder('x'),
        await context.session().countBy(R2Audit, { note: 'x' }),
      ];
    });
    expect(seen).toEqual([1, 1, 1]);
    expect(await count(t.dataSource, 'r2_audit')).toBe(0);
  });

  it('BaseEntity static and instance methods (useDataSource) run in the unit', async () => {
    const seen = await rolledBack(async () => {
      await R2Active.save(R2Active.create({ name: 'static' }));
      const active = new R2Active();
      active.name = 'instance';
      await active.save();
      await R2Active.insert({ name: 'inserted' });
      await sameTransaction();
      const found = await R2Active.find({ order: { name: 'ASC' } });
      const inSession = await context.session().count(R2Active);
      await active.remove();
      return [found.map((a) => a.name), inSession, await R2Active.count()];
    });
    expect(seen).toEqual([['inserted', 'instance', 'static'], 3, 2]);
    expect(await count(t.dataSource, 'r2_active')).toBe(0);
  });

  it.each(['manager', 'repository'] as const)(
    'an entity subscriber writing through the plain data source (%s) joins the unit and does not hang',
    async (hook) => {
      holder.hook = hook;
      const seen = await rolledBack(async () => {
        // Plain repository, the session, and a plain transaction() savepoint block.
        await t.dataSource.getRepository(R2Book).save({ title: 'plain' });
        await context.session().save(R2Book, { title: 'session' });
        await t.dataSource.transaction((manager) => manager.save(R2Book, { title: 'block' }));
        await sameTransaction();
        return context.session().count(R2Audit);
      });
      expect(seen).toBe(3);
      expect(await count(t.dataSource, 'r2_audit')).toBe(0);
      expect(await count(t.dataSource, 'r2_book')).toBe(0);
    },
  );

  it('a subscriber write commits with the unit it joined', async () => {
    holder.hook = 'manager';
    await within(
      factory.runInNewContext(async () => {
        await t.dataSource.getRepository(R2Book).save({ title: 'kept' });
      }),
    );
    expect(await count(t.dataSource, 'r2_audit')).toBe(1);
    expect(await count(t.dataSource, 'r2_book')).toBe(1);
  });

  it('an @AfterInsert listener writing through dataSource.getRepository() joins the unit', async () => {
    const seen = await rolledBack(async () => {
      const listened = t.dataSource.getRepository(R2Listened);
      await listened.save(listened.create({ name: 'plain' }));
      await context.session().save(context.session().create(R2Listened, { name: 'session' }));
      return context.session().find(R2Audit, { order: { note: 'ASC' } });
    });
    expect(seen.map((a) => a.note)).toEqual(['listener:plain', 'listener:session']);
    expect(await count(t.dataSource, 'r2_audit')).toBe(0);
    expect(await count(t.dataSource, 'r2_listened')).toBe(0);
  });
});
