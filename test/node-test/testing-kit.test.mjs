// The testing kit under node:test, from the built package, in plain JavaScript (no decorators:
// Nest's are applied as functions). Run by `npm test` after the Jest suites.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Controller, Inject, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, EntitySchema } from 'typeorm';
import { SessionContext, TypeOrmContextModule } from '../../dist/index.js';
import { TestTransaction } from '../../dist/testing/index.js';
import { database } from './database.mjs';

const Note = new EntitySchema({
  name: 'node_test_note',
  columns: { id: { type: Number, primary: true, generated: true }, text: { type: String } },
});

class NotesController {
  constructor(context) {
    this.context = context;
  }
  async create() {
    await this.context.session().getRepository(Note).insert({ text: 'from a request' });
    return 'ok';
  }
}
Inject(SessionContext)(NotesController, undefined, 0);
Post('notes')(
  NotesController.prototype,
  'create',
  Object.getOwnPropertyDescriptor(NotesController.prototype, 'create'),
);
Controller()(NotesController);

const db = await database();
const url = db.url;
class AppModule {}
Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url,
      entities: [Note],
      synchronize: true,
      logging: false,
    }),
    TypeOrmContextModule.forRoot(),
  ],
  controllers: [NotesController],
})(AppModule);

describe('TestTransaction under node:test', () => {
  let app;
  let base;
  let tx;
  const count = async () =>
    Number((await app.get(DataSource).query('SELECT count(*) AS n FROM node_test_note'))[0].n);

  before(async () => {
    app = await NestFactory.create(AppModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });
  beforeEach(async () => {
    tx = await TestTransaction.start(app);
  });
  afterEach(() => tx.rollback());
  after(async () => {
    await app.close();
    await db.stop();
  });

  for (const n of [1, 2]) {
    it(`sees its own request's row, and the previous test's is gone (${n})`, async () => {
      assert.equal(await count(), 0);
      const response = await fetch(`${base}/notes`, { method: 'POST' });
      assert.equal(response.status, 201);
      assert.equal(await count(), 1);
    });
  }
});
