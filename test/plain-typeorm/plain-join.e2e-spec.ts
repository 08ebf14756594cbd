import { Propagation, SessionContextEndedError } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { eventually } from '../support/create-app.js';
import {
  type Engine,
  engines,
  enginesAndSqlite,
  isSqliteEngine,
  txid,
} from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { PlainWarnings, startPlainApp, type PlainApp } from './plain-app.js';

/** What a request came to: its status and the rows left behind, sorted. */
async function outcome(t: PlainApp, path: string): Promise<{ status: number; rows: string[] }> {
  const response = await t.http().post(path);
  return { status: response.status, rows: await t.texts() };
}

/** The server's id of the connection behind `run`'s first query. */
async function backend(engine: Engine, run: (sql: string) => Promise<unknown>): Promise<string> {
  const rows = (await run(engine.backendSql)) as Array<{ id: unknown }>;
  return String(rows[0]!.id);
}

describe.each(enginesAndSqlite)("plainTypeorm: 'join' ($name)", (engine) => {
  describe('a typeorm-transactional-style service layer, unchanged', () => {
    let plain: PlainApp;
    let own: PlainApp;
    const warnings = new PlainWarnings();

    beforeAll(async () => {
      // Both apps in one process: the plain one joins, the other uses this library's repositories.
      plain = await startPlainApp(engine, { plainTypeorm: 'join' }, warnings);
      own = await startPlainApp(engine, {}, warnings, 'context');
    });
    afterEach(async () => {
      await plain.expectClean();
      await own.expectClean();
      await plain.dataSource.query('DELETE FROM example');
      // On SQLite in memory each app has a database of its own.
      await own.dataSource.query('DELETE FROM example');
    });
    afterAll(async () => {
      await plain.close();
      await own.close();
    });

    it.each([
      ['/plain/repo?text=r', 201],
      ['/plain/repo-fail?text=f', 500],
      ['/plain/half?text=h', 201],
      ['/plain/own?text=o', 500],
    ])('%s ends as it does with TypeOrmContextModule.forFeature() repositories', async (path) => {
      const joined = await outcome(plain, path);
      await plain.dataSource.query('DELETE FROM example');
      const reference = await outcome(own, path);
      expect(joined).toEqual(reference);
      expect(warnings.lines).toEqual([]);
    });

    it('commits what every plain path wrote, and rolls all of it back when the handler throws', async () => {
      expect(await outcome(plain, '/plain/add?text=a')).toEqual({
        status: 201,
        rows: ['a_manager', 'a_query', 'a_repo'],
      });
      await plain.dataSource.query('DELETE FROM example');
      expect(await outcome(plain, '/plain/fail?text=b')).toEqual({ status: 500, rows: [] });
    });
  });

  describe('inside a unit of work', () => {
    let t: PlainApp;

    beforeAll(async () => {
      t = await startPlainApp(engine, { plainTypeorm: 'join' });
    });
    afterEach(async () => {
      await t.expectClean();
      await t.dataSource.query('DELETE FROM example');
    });
    afterAll(() => t.close());

    it("runs on the unit's connection and in its transaction, every plain path", async () => {
      const seen = await t.factory.runInNewContext(async () => {
        await t.service.add('shared');
        const session = t.context.session();
        return {
          unit: await backend(engine, (sql) => session.query(sql)),
          viaQuery: await backend(engine, (sql) => t.dataSource.query(sql)),
          viaManager: await backend(engine, (sql) => t.dataSource.manager.query(sql)),
          viaRepo: await backend(engine, (sql) => t.service.examples.query(sql)),
          unitTx: await txid(engine, session),
          plainTx: await txid(engine, t.dataSource.manager),
          visible: await t.dataSource.getRepository(Example).countBy({ text: 'shared' }),
          // Plain code in a NOT_SUPPORTED block: a connection of its own, nothing committed yet.
          // SQLite has no other connection: there that code would wait for this unit.
          others: isSqliteEngine(engine)
            ? 'no other connection on SQLite'
            : await t.context.atomic(() => t.rows(), {
                propagation: Propagation.NOT_SUPPORTED,
              }),
        };
      });
      expect(seen.viaQuery).toBe(seen.unit);
      expect(seen.viaManager).toBe(seen.unit);
      expect(seen.viaRepo).toBe(seen.unit);
      expect(seen.unitTx).not.toBeNull();
      expect(seen.plainTx).toBe(seen.unitTx);
      expect(seen.visible).toBe(1);
      expect(seen.others).toBe(isSqliteEngine(engine) ? 'no other connection on SQLite' : 0);
      expect(await t.texts()).toEqual(['shared']);
    });

    it('runs dataSource.transaction() as a savepoint of the unit: its failure undoes only its own rows', async () => {
      await t.factory.runInNewContext(async () => {
        await t.service.add('before');
        const unit = await backend(engine, (sql) => t.context.session().query(sql));
        await expect(
          t.dataSource.transaction(async (manager) => {
            await manager.insert(Example, { text: 'inner' });
            expect(await backend(engine, (sql) => manager.query(sql))).toBe(unit);
            throw new Error('inner fails');
          }),
        ).rejects.toThrow('inner fails');
        await t.dataSource.transaction((manager) => manager.insert(Example, { text: 'kept' }));
        await t.service.examples.manager.transaction(async (manager) => {
          await manager.save(Example, { text: 'repo_manager' });
        });
      });
      expect(await t.texts()).toEqual(['before', 'kept', 'repo_manager']);
    });

    it('rolls back a plain transaction() that succeeded when the unit fails', async () => {
      await expect(
        t.factory.runInNewContext(async () => {
          await t.dataSource.transaction((manager) => manager.insert(Example, { text: 'inner' }));
          throw new Error('unit fails');
        }),
      ).rejects.toThrow('unit fails');
      expect(await t.rows()).toBe(0);
    });

    it('joins a manager made with createEntityManager(), and rolls its writes back with the unit', async () => {
      await expect(
        t.factory.runInNewContext(async () => {
          const made = t.dataSource.createEntityManager();
          await made.save(Example, { text: 'made' });
          expect(await txid(engine, made)).toBe(await txid(engine, t.context.session()));
          expect(await made.countBy(Example, { text: 'made' })).toBe(1);
          throw new Error('unit fails');
        }),
      ).rejects.toThrow('unit fails');
      expect(await t.rows()).toBe(0);
    });

    it('runs ten plain saves at once in the one transaction', async () => {
      const ids = await t.factory.runInNewContext(async () => {
        await Promise.all(Array.from({ length: 10 }, (_, i) => t.service.add(`p${i}`)));
        return Promise.all([txid(engine, t.dataSource.manager), txid(engine, t.context.session())]);
      });
      expect(ids[0]).not.toBeNull();
      expect(ids[0]).toBe(ids[1]);
      expect(await t.rows()).toBe(10);
    });

    it('makes a subscriber that writes through the plain manager part of the unit', async () => {
      await t.factory.runInNewContext(() => t.service.add('x_audited'));
      expect(await t.texts()).toEqual(['x_audited', 'x_audited_audit']);
      await t.dataSource.query('DELETE FROM example');
      await expect(
        t.factory.runInNewContext(async () => {
          await t.service.add('y_audited');
          throw new Error('unit fails');
        }),
      ).rejects.toThrow('unit fails');
      expect(await t.rows()).toBe(0);
    });

    it('fails plain code that runs after its unit ended, writing nothing', async () => {
      let late: Promise<unknown> | undefined;
      await t.factory.runInNewContext(async () => {
        late = new Promise((resolve) => setTimeout(resolve, 20)).then(() => t.service.add('late'));
        late.catch(() => undefined); // handled now: a slow commit may outlast the 20 ms
      });
      await expect(late).rejects.toBeInstanceOf(SessionContextEndedError);
      let lateQuery: Promise<unknown> | undefined;
      await t.factory.runInNewContext(async () => {
        lateQuery = new Promise((resolve) => setTimeout(resolve, 20)).then(() =>
          t.dataSource.query("INSERT INTO example (text) VALUES ('late_query')"),
        );
        lateQuery.catch(() => undefined);
      });
      await expect(lateQuery).rejects.toBeInstanceOf(SessionContextEndedError);
      expect(await t.rows()).toBe(0);
    });

    it('leaves a NOT_SUPPORTED block plain: its rows commit although the unit fails', async () => {
      await expect(
        t.factory.runInNewContext(async () => {
          await t.service.notSupported('autocommitted');
          throw new Error('unit fails');
        }),
      ).rejects.toThrow('unit fails');
      expect(await t.texts()).toEqual(['autocommitted']);
    });

    it('leaves code outside any unit plain TypeORM: autocommit, no transaction', async () => {
      await t.service.add('outside');
      expect(await t.texts()).toEqual(['outside']);
      expect(await txid(engine, t.dataSource.manager)).toBeNull();
      await t.dataSource.transaction(async (manager) => {
        await manager.insert(Example, { text: 'outside_tx' });
        expect(await txid(engine, manager)).not.toBeNull();
      });
      expect(await t.rows()).toBe(2);
    });
  });

  describe('under the testing kit', () => {
    let t: PlainApp;
    let tx: TestTransaction | undefined;

    beforeAll(async () => {
      t = await startPlainApp(engine, { plainTypeorm: 'join' });
    });
    afterEach(async () => {
      await tx?.rollback();
      tx = undefined;
      await t.expectClean();
    });
    afterAll(() => t.close());

    it("runs a request's plain writes in the test's transaction, rolled back at its end", async () => {
      tx = await TestTransaction.start(t.app);
      await t.http().post('/plain/add?text=k').expect(201);
      expect(
        (await t.dataSource.getRepository(Example).find()).map((row) => row.text).sort(),
      ).toEqual(['k_manager', 'k_query', 'k_repo']);
      await t.http().post('/plain/fail?text=l').expect(500);
      expect(await t.dataSource.getRepository(Example).count()).toBe(3);
      await tx.rollback();
      tx = undefined;
      await eventually(async () => (await t.rows()) === 0);
    });
  });
});

/**
 * Plain code beside the unit: a REQUIRES_NEW block's own connection, and a query-builder stream.
 * SQLite has neither (one connection; TypeORM's SQLite drivers cannot stream).
 */
describe.each(engines)("plainTypeorm: 'join', on a connection of its own ($name)", (engine) => {
  let t: PlainApp;

  beforeAll(async () => {
    t = await startPlainApp(engine, { plainTypeorm: 'join' });
  });
  afterEach(async () => {
    await t.expectClean();
    await t.dataSource.query('DELETE FROM example');
  });
  afterAll(() => t.close());

  it("joins a REQUIRES_NEW block's own session and a factory session, not the outer unit", async () => {
    await expect(
      t.factory.runInNewContext(async () => {
        await t.service.add('outer');
        const outer = await backend(engine, (sql) => t.dataSource.query(sql));
        const inner = await t.context.atomic(
          async () => {
            await t.service.add('requires_new');
            return backend(engine, (sql) => t.dataSource.query(sql));
          },
          { propagation: Propagation.REQUIRES_NEW },
        );
        expect(inner).not.toBe(outer);
        await t.factory.atomic(() => t.service.add('factory'));
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(await t.texts()).toEqual(['factory', 'requires_new']);
  });

  it("streams through a plain query builder on the unit's connection, seeing its rows", async () => {
    const streamed = await t.factory.runInNewContext(async () => {
      await t.service.add('streamed');
      const stream = await t.dataSource
        .createQueryBuilder()
        .select('e.text', 'text')
        .from(Example, 'e')
        .stream();
      const texts: string[] = [];
      for await (const row of stream) texts.push((row as { text: string }).text);
      return texts;
    });
    expect(streamed).toEqual(['streamed']);
  });
});
