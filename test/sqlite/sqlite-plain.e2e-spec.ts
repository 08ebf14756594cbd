import { PlainWarnings, site, startPlainApp, type PlainApp } from '../plain-typeorm/plain-app.js';
import { sqliteEngines } from '../support/engines.js';

describe.each(sqliteEngines)(
  "SQLite: plain TypeORM code inside a unit, plainTypeorm 'warn' ($name)",
  (engine) => {
    let t: PlainApp;
    const warnings = new PlainWarnings();

    beforeAll(async () => {
      t = await startPlainApp(engine, { acquireTimeout: 1000 }, warnings);
    });
    afterEach(async () => {
      await t.expectClean();
      await t.dataSource.query('DELETE FROM example');
    });
    afterAll(() => t.close());

    it("joins the unit's transaction (a connection of its own would wait for the unit) and says so once per call site", async () => {
      await t.http().post('/plain/add?text=a').expect(201);
      expect(warnings.lines).toHaveLength(3);
      const [repo, manager, query] = warnings.lines;
      expect(repo).toContain(site('add'));
      expect(manager).toContain(site('manager'));
      expect(query).toContain(site('query'));
      for (const line of warnings.lines) {
        expect(line).toContain("SQLite data source 'default'");
        expect(line).toContain("joined the unit's transaction");
        expect(line).toContain("plainTypeorm: 'join'");
      }
      await t.http().post('/plain/add?text=b').expect(201);
      expect(warnings.lines).toHaveLength(3);
      expect(await t.texts()).toEqual([
        'a_manager',
        'a_query',
        'a_repo',
        'b_manager',
        'b_query',
        'b_repo',
      ]);
    });

    it('is rolled back with the unit, as it ran in its transaction', async () => {
      await t.http().post('/plain/fail?text=f').expect(500);
      expect(await t.rows()).toBe(0);
    });

    it('outside any unit it runs on its own turn, silently', async () => {
      const before = warnings.lines.length;
      await t.service.add('outside');
      await t.dataSource.query('SELECT 1');
      expect(warnings.lines.length).toBe(before);
      expect(await t.texts()).toEqual(['outside']);
    });
  },
);
