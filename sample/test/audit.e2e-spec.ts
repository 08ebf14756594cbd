import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { betterSqlite3Claimed } from '../../test/support/engines.js';
import { AppModule } from '../src/app.module.js';
import { AuditEntry, Note } from '../src/entities.js';

/**
 * What a test transaction cannot show: an audit entry written with REQUIRES_NEW survives its
 * caller's rollback only through a COMMIT of its own. Against the real pool, cleaning up itself.
 */
/** PostgreSQL (the suite's database), and SQLite in memory (`DB=sqlite npm start`). */
// SQLite runs on better-sqlite3, where the suite claims it (TypeORM 1.x, Node before 24).
const databases = [process.env.DATABASE_URL!, ...(betterSqlite3Claimed ? ['sqlite::memory:'] : [])];

describe.each(databases)('sample app, against the real pool (%s)', (database) => {
  let app: INestApplication;
  let dataSource: DataSource;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forRoot(database)],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    dataSource = app.get(DataSource);
  });
  const clear = async () => {
    await dataSource.query('DELETE FROM note');
    await dataSource.query('DELETE FROM audit_entry');
  };
  beforeEach(clear);
  afterAll(async () => {
    await clear();
    await app.close();
  });

  it('POST /notes/audited with fail: the note is rolled back, its audit entry stays', async () => {
    await request(app.getHttpServer())
      .post('/notes/audited')
      .send({ text: 'audited', fail: true })
      .expect(500);
    expect(await dataSource.getRepository(Note).count()).toBe(0);
    expect(
      (await dataSource.getRepository(AuditEntry).find()).map((entry) => entry.message),
    ).toEqual(["create 'audited' attempted"]);
  });
});
