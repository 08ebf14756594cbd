import { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Test } from '@nestjs/testing';
import { TestTransaction } from 'nestjs-typeorm-context/testing';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { AppModule } from '../src/app.module.js';

describe('notes (e2e)', () => {
  let app: INestApplication;
  const count = async (text: string): Promise<number> => {
    const rows = await app
      .get(DataSource)
      .query('SELECT count(*)::int AS n FROM consumer_nest12_esm_vitest_note WHERE text = $1', [
        text,
      ]);
    return rows[0].n;
  };

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication();
    await app.init();
  });
  afterAll(() => app.close());

  it('commits a request that succeeds and rolls back one that throws', async () => {
    const text = `e2e ${process.pid} ${Date.now()}`;
    await request(app.getHttpServer()).post('/notes').send({ text }).expect(201);
    await request(app.getHttpServer())
      .post('/notes/fail')
      .send({ text: `${text} failed` })
      .expect(400);
    expect(await count(text)).toBe(1);
    expect(await count(`${text} failed`)).toBe(0);
  });

  it('TestTransaction rolls back what a request committed inside it', async () => {
    const text = `kit ${process.pid} ${Date.now()}`;
    const tx = await TestTransaction.start(app);
    await request(app.getHttpServer()).post('/notes').send({ text }).expect(201);
    expect(await count(text)).toBe(1);
    await tx.rollback();
    expect(await count(text)).toBe(0);
  });
});
