import { SessionContextEndedError } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite, isSqliteEngine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { AutoCommitController, probe, SessionGuard } from './auto-commit.controller.js';

describe.each(enginesAndSqlite)('auto-commit interceptor and middleware ($name)', (engine) => {
  let t: TestApp;
  const commits: Array<{ at: number }> = [];

  beforeAll(async () => {
    probe.engine = engine;
    t = await createTestApp(engine, {
      controllers: [AutoCommitController],
      providers: [SessionGuard],
      context: {
        beforeCommit: async (manager) => {
          const rows: unknown[] = await manager.query('SELECT 1');
          if (rows.length !== 1) throw new Error('beforeCommit could not query');
          if (process.env.FAIL_BEFORE_COMMIT) throw new Error('beforeCommit refused');
          await new Promise((resolve) => setTimeout(resolve, 100));
          commits.push({ at: Date.now() });
        },
      },
    });
  });
  beforeEach(async () => {
    commits.length = 0;
    probe.lateErrors = [];
    delete process.env.FAIL_BEFORE_COMMIT;
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('a request that never touches the database takes no connection', async () => {
    const before = (await t.http().get('/noop').expect(200)).body;
    expect(before.checkedOut).toBe(0);
    const { body } = await t.http().get('/lazy').expect(200);
    expect(body).toEqual({ hasManager: true, checkedOut: 0 });
  });

  it("TypeORM's save() and remove() join the session's transaction instead of committing their own", async () => {
    const { body } = await t.http().post('/save-joins').expect(201);
    expect(body.assigned).not.toBeNull();
    expect(body.after).toBe(body.assigned);
    expect(body.visibleOutside).toBe(isSqliteEngine(engine) ? 'no other connection on SQLite' : 0);
    expect(await t.texts()).toEqual(['saved']);
  });

  it('two concurrent first calls to session() in one context get the same session', async () => {
    const { body } = await t.http().get('/same-session').expect(200);
    expect(body).toEqual({ sameManager: true, sameBackend: true });
  });

  it('commits before the response is sent', async () => {
    let rowsAtResponse = -1;
    await t
      .http()
      .post('/insert')
      .expect(201)
      .then(async () => {
        rowsAtResponse = await t.rows();
      });
    expect(commits).toHaveLength(1);
    expect(rowsAtResponse).toBe(1);
  });

  it('a failed commit gives a 5xx and writes nothing', async () => {
    process.env.FAIL_BEFORE_COMMIT = '1';
    await t.http().post('/insert').expect(500);
    expect(await t.rows()).toBe(0);
  });

  if (engine.name === 'postgres') {
    it('a COMMIT that the database refuses (deferred constraint) gives a 5xx and no row', async () => {
      await t.dataSource.query(
        'CREATE TABLE IF NOT EXISTS deferred_check (id int, CONSTRAINT deferred_unique UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)',
      );
      await t.dataSource.query('DELETE FROM deferred_check');
      await t.http().post('/deferred-violation').expect(500);
      expect(await t.rows()).toBe(0);
      expect(await t.dataSource.query('SELECT * FROM deferred_check')).toEqual([]);
    });
  }

  it('a guard can use the session: the context exists before guards, and the handler shares it', async () => {
    const { body } = await t.http().get('/guarded').expect(200);
    expect(body.guard).toBe(body.handler);
    expect(await t.texts()).toEqual(['written_by_guard']);
  });

  it('a guard that throws after using the session: rolled back and released', async () => {
    await t.http().get('/guarded?deny=1').expect(403);
    await t.expectClean();
    expect(await t.rows()).toBe(0);
  });

  it('a late use after the request ended fails clearly and writes nothing', async () => {
    await t.http().post('/late-use').expect(201);
    await eventually(() => probe.lateErrors.length === 2);
    for (const error of probe.lateErrors) expect(error).toBeInstanceOf(SessionContextEndedError);
    expect(String(probe.lateErrors[0])).toContain(
      'after its request, job or runInNewContext() finished',
    );
    expect(await t.dataSource.getRepository(Example).find()).toEqual([
      expect.objectContaining({ text: 'in_time' }),
    ]);
  });
});
