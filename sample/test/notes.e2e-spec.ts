import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { SessionContext, SessionFactory } from 'nestjs-typeorm-context';
import { TestTransaction } from 'nestjs-typeorm-context/testing';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { AppModule } from '../src/app.module.js';
import { AuditEntry, Note } from '../src/entities.js';
import { seedUsers } from '../src/seed.js';
import { betterSqlite3Claimed } from '../../test/support/engines.js';

/**
 * The sample's own tests, as an app of yours would write them: each test runs in a
 * TestTransaction, so requests commit into it and everything is rolled back after the test.
 */
/** PostgreSQL (the suite's database), and SQLite in memory (`DB=sqlite npm start`). */
// SQLite runs on better-sqlite3, where the suite claims it (TypeORM 1.x, Node before 24).
const databases = [process.env.DATABASE_URL!, ...(betterSqlite3Claimed ? ['sqlite::memory:'] : [])];

describe.each(databases)('sample app (%s)', (database) => {
  let app: INestApplication;
  let dataSource: DataSource;
  let tx: TestTransaction;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forRoot(database)],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    dataSource = app.get(DataSource);
  });
  beforeEach(async () => {
    tx = await TestTransaction.start(app);
    await seedUsers(app.get(SessionFactory), app.get(SessionContext));
  });
  afterEach(() => tx.rollback());
  afterAll(() => app.close());

  const http = () => request(app.getHttpServer());
  const texts = async () =>
    (await dataSource.getRepository(Note).find({ order: { id: 'ASC' } })).map((note) => note.text);

  it('POST /notes commits the note before answering; GET /notes lists it', async () => {
    const { body } = await http().post('/notes').send({ text: 'hello' }).expect(201);
    expect(body).toMatchObject({ text: 'hello' });
    expect(await texts()).toEqual(['hello']);
    expect((await http().get('/notes').expect(200)).body).toEqual([{ id: body.id, text: 'hello' }]);
  });

  it('POST /notes/fail writes, then throws: 500 and no note', async () => {
    await http().post('/notes/fail').send({ text: 'lost' }).expect(500);
    expect(await texts()).toEqual([]);
  });

  it('POST /notes/early-commit keeps what it committed before failing', async () => {
    await http().post('/notes/early-commit').send({ text: 'early' }).expect(500);
    expect(await texts()).toEqual(['early (committed early)']);
  });

  it('POST /notes/batch: NESTED savepoints, the empty text fails alone', async () => {
    const { body } = await http()
      .post('/notes/batch')
      .send({ texts: ['one', '', 'three'] })
      .expect(201);
    expect(body.saved).toEqual(['one', 'three']);
    expect(body.failed).toHaveLength(1);
    expect(await texts()).toEqual(['one', 'three']);
  });

  it('POST /notes/audited: the audit entry (REQUIRES_NEW) is written with the note', async () => {
    await http().post('/notes/audited').send({ text: 'audited' }).expect(201);
    expect(await texts()).toEqual(['audited']);
    expect(await dataSource.getRepository(AuditEntry).count()).toBe(1);
    // That the entry also survives a failing note needs a real COMMIT: see audit.e2e-spec.ts.
  });

  it('GET /me: the guard loads the user in the request session, the handler shares its transaction', async () => {
    await http().get('/me').expect(401);
    const { body } = await http().get('/me').set('authorization', 'Bearer alice-token').expect(200);
    expect(body.user).toBe('alice');
    expect(body.guardTxid).toBe(body.handlerTxid);
  });

  it('GET /parallel answers (inside the test its sessions take turns on one connection)', async () => {
    const { body } = await http().get('/parallel?n=2').expect(200);
    expect(body.independentSessions.queries).toBe(2);
    expect(body.requestSession.distinctBackendPids).toBe(1);
  });
});
