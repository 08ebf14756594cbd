import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { type TestApp, wrap } from '../support/create-app.js';
import { betterSqlite3, betterSqlite3Claimed, describeBetterSqlite3 } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An app on the better-sqlite3 file `database` (WAL), with the driver's busy `timeout`. */
async function fileApp(database: string, busyTimeout: number): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'better-sqlite3',
        database,
        enableWAL: true,
        timeout: busyTimeout,
        entities: [Example],
        synchronize: true,
      }),
      TypeOrmContextModule.forRoot({ acquireTimeout: 1000 }),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return wrap(app, betterSqlite3, app.get(DataSource));
}

/** Writes `text` in a unit of `t`, holding the turn (and SQLite's write lock) `ms` before the commit. */
function write(t: TestApp, text: string, ms = 0): Promise<void> {
  return t.app.get(SessionFactory).runInNewContext(async () => {
    await t.app.get(SessionContext).session().insert(Example, { text });
    if (ms > 0) await sleep(ms);
  });
}

/**
 * Attack: two data sources (as two processes would) on one WAL file. The turns do not order them;
 * SQLite's lock and busy timeout do. A writer that meets the other's lock must fail cleanly and
 * leave its own turn usable; readers are never blocked (WAL, read-only begins deferred).
 */
// better-sqlite3 only where the suite claims it (see engines.ts); a file needs it (sql.js has none).
if (!betterSqlite3Claimed) {
  it('better-sqlite3 is not claimed on this install (TypeORM 0.3 or Node 24): nothing to run', () => {
    expect(betterSqlite3Claimed).toBe(false);
  });
}

describeBetterSqlite3('SQLite review: two data sources on one file (better-sqlite3, WAL)', () => {
  let dir: string;
  let one: TestApp;
  let two: TestApp;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sqlreview-'));
    const file = join(dir, 'app.db');
    one = await fileApp(file, 5000);
    two = await fileApp(file, 50);
    await one.dataSource.query('DELETE FROM example');
  });

  afterEach(async () => {
    await one.close();
    await two.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a writer blocked past the busy timeout fails (SQLITE_BUSY) and its next unit works once the lock is free', async () => {
    const holder = write(one, 'one', 300);
    await sleep(30);
    const busy = await write(two, 'two').then(
      () => 'written',
      (error: { driverError?: { code?: string }; code?: string; message: string }) =>
        error.driverError?.code ?? error.code ?? error.message,
    );
    expect(String(busy)).toMatch(/BUSY|locked/i);
    await holder;
    await write(two, 'two again');
    expect(await one.texts()).toEqual(['one', 'two again']);
    await one.expectClean();
    await two.expectClean();
  });

  it('a readOnly unit of the other data source reads while a writer holds the lock (WAL)', async () => {
    await write(one, 'committed');
    const holder = write(one, 'uncommitted', 300);
    await sleep(30);
    const seen = await two.app
      .get(SessionFactory)
      .atomic((manager) => manager.find(Example), { readOnly: true });
    expect(seen.map((row) => row.text)).toEqual(['committed']);
    await holder;
    await two.expectClean();
  });
});
