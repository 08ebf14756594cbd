import { Propagation } from '../../src/index.js';
import { enginesAndSqlite, isSqliteEngine } from '../support/engines.js';
import { PlainWarnings, site, startPlainApp, type PlainApp } from './plain-app.js';

describe.each(enginesAndSqlite)(
  'plain TypeORM inside a unit of work, warned about ($name)',
  (engine) => {
    describe("plainTypeorm: 'warn' (the default)", () => {
      let t: PlainApp;
      const warnings = new PlainWarnings();

      beforeAll(async () => {
        t = await startPlainApp(engine, {}, warnings);
      });
      afterEach(async () => {
        await t.expectClean();
        await t.dataSource.query('DELETE FROM example');
      });
      afterAll(() => t.close());

      it('names each call site once, and the fixes', async () => {
        await t.http().post('/plain/add?text=a').expect(201);
        expect(warnings.lines).toHaveLength(3);
        const [repo, manager, query] = warnings.lines;
        expect(repo).toContain(site('add'));
        expect(repo).toContain('save()');
        expect(manager).toContain(site('manager'));
        expect(manager).toContain('insert()');
        expect(query).toContain(site('query'));
        expect(query).toContain('query()');
        for (const line of warnings.lines) {
          expect(line).toContain("data source 'default'");
          expect(line).toContain('TypeOrmContextModule.forFeature');
          expect(line).toContain('@InjectSession()');
          expect(line).toContain("plainTypeorm: 'join'");
        }
        await t.http().post('/plain/add?text=b').expect(201);
        expect(warnings.lines).toHaveLength(3);
        expect(await t.rows()).toBe(6);
      });

      it('tells the truth: what plain code wrote stays although the unit rolls back', async () => {
        await t.http().post('/plain/fail?text=f').expect(500);
        // SQLite: plain code inside a unit joins it (docs/sqlite.md), so it rolls back with it.
        expect(await t.texts()).toEqual(isSqliteEngine(engine) ? [] : ['f_manager', 'f_repo']);
      });

      it('is silent outside any unit of work and in a NOT_SUPPORTED block', async () => {
        const before = warnings.lines.length;
        await t.service.add('outside');
        await t.dataSource.query('SELECT 1');
        await t.factory.runInNewContext(() =>
          t.context.atomic(() => t.service.add('not_supported'), {
            propagation: Propagation.NOT_SUPPORTED,
          }),
        );
        expect(warnings.lines.length).toBe(before);
        expect(await t.rows()).toBe(2);
      });
    });

    it("is silent with this library's own repositories, and with plainTypeorm: 'off'", async () => {
      const warnings = new PlainWarnings();
      const own = await startPlainApp(engine, {}, warnings, 'context');
      const off = await startPlainApp(engine, { plainTypeorm: 'off' }, warnings);
      try {
        await own.http().post('/plain/repo?text=own').expect(201);
        await off.http().post('/plain/add?text=off').expect(201);
        await off.http().post('/plain/fail?text=off_fail').expect(500);
        expect(warnings.lines).toEqual([]);
        // 'off' is plain TypeORM: the failed request's plain rows stay. The servers hold both apps'
        // rows in one database; on SQLite in memory each app has a database of its own.
        if (isSqliteEngine(engine))
          expect([await own.rows(), await off.rows()]).toEqual([5, 3 + 2]);
        else expect(await off.rows()).toBe(5 + 3 + 2);
      } finally {
        await own.close();
        await off.close();
      }
    });
  },
);
