// One runtime whichever way an app loads the package: `require('nestjs-typeorm-context')` and
// `import('nestjs-typeorm-context')` (resolved through package.json's `exports`, as in an app)
// give the very same objects (Node picks the ESM build for both through the `module-sync`
// condition), so a unit of work opened through one is the one seen through the other. The
// CommonJS build in dist/cjs/ (the `require` condition, for runtimes that cannot require ESM such
// as Jest's CommonJS mode) exports the same names. Run by `npm test` after the Jest suites.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { database } from './database.mjs';

const require = createRequire(import.meta.url);
const required = require('nestjs-typeorm-context');
const requiredKit = require('nestjs-typeorm-context/testing');
const imported = await import('nestjs-typeorm-context');
const importedKit = await import('nestjs-typeorm-context/testing');

describe('require() and import() of the package', () => {
  it('give the identical objects, every one of them', () => {
    assert.equal(required.SessionContext, imported.SessionContext);
    assert.equal(required.TypeOrmContextModule, imported.TypeOrmContextModule);
    assert.equal(requiredKit.TestTransaction, importedKit.TestTransaction);
    const names = (module) => Object.keys(module).filter((name) => name !== '__esModule');
    assert.deepEqual(names(required).sort(), names(imported).sort());
    for (const name of names(imported)) assert.equal(required[name], imported[name], name);
    for (const name of names(importedKit)) assert.equal(requiredKit[name], importedKit[name], name);
  });

  it('the CommonJS build exports the same names as the ESM build', () => {
    const cjs = require('../../dist/cjs/index.js');
    const cjsKit = require('../../dist/cjs/testing/index.js');
    const names = (module) => Object.keys(module).filter((name) => name !== '__esModule');
    assert.deepEqual(names(cjs).sort(), names(imported).sort());
    assert.deepEqual(names(cjsKit).sort(), names(importedKit).sort());
  });
});

describe('a unit of work opened through one is seen through the other', () => {
  let db;
  let app;
  const where = 'SELECT txid_current()::text AS tx, pg_backend_pid() AS pid';

  before(async () => {
    db = await database();
    class AppModule {}
    Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: db.url, logging: false }),
        required.TypeOrmContextModule.forRoot(),
      ],
    })(AppModule);
    app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  });
  after(async () => {
    await app?.close();
    await db?.stop();
  });

  it('runInNewContext through import, sessions through both: one backend, one transaction', async () => {
    const viaRequire = app.get(required.SessionContext);
    const viaImport = app.get(imported.SessionContext);
    assert.equal(viaRequire, viaImport);
    const [a, b] = await app.get(imported.SessionFactory).runInNewContext(async () => {
      const first = await viaRequire.session().query(where);
      const second = await viaImport.session().query(where);
      return [first[0], second[0]];
    });
    assert.deepEqual(a, b);
  });

  it('atomic() through require is the transaction a session through import is in', async () => {
    const [a, b] = await app.get(required.SessionFactory).runInNewContext(() =>
      app.get(required.SessionContext).atomic(async () => {
        const inner = await app.get(imported.SessionContext).session().query(where);
        const outer = await app.get(required.SessionContext).session().query(where);
        return [inner[0], outer[0]];
      }),
    );
    assert.deepEqual(a, b);
  });

  it('a TestTransaction started through require holds what a session through import wrote', async () => {
    await app
      .get(imported.SessionFactory)
      .runInNewContext(() =>
        app
          .get(imported.SessionContext)
          .session()
          .query('CREATE TABLE IF NOT EXISTS one_runtime_note (id int)'),
      );
    const tx = await requiredKit.TestTransaction.start(app);
    try {
      await app
        .get(imported.SessionFactory)
        .runInNewContext(() =>
          app
            .get(imported.SessionContext)
            .session()
            .query('INSERT INTO one_runtime_note VALUES (1)'),
        );
      const seen = await app
        .get(required.SessionFactory)
        .runInNewContext(() =>
          app
            .get(required.SessionContext)
            .session()
            .query('SELECT count(*)::int AS n FROM one_runtime_note'),
        );
      assert.equal(seen[0].n, 1);
    } finally {
      await tx.rollback();
    }
    const left = await app
      .get(imported.SessionFactory)
      .runInNewContext(() =>
        app
          .get(imported.SessionContext)
          .session()
          .query('SELECT count(*)::int AS n FROM one_runtime_note'),
      );
    assert.equal(left[0].n, 0);
  });
});
