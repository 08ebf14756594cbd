import { DataSource } from 'typeorm';
import {
  InvalidOptionError,
  NoSessionContextError,
  SessionContextEndedError,
  SessionFactory,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { resolveModuleOptions } from '../../src/typeorm-context.options.js';
import type { TestApp } from '../support/create-app.js';
import { enginesAndSqlite, isSqliteEngine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { createApp, type Mode, script, site, start, Warnings, Writer } from './outside-unit-app.js';

describe.each(enginesAndSqlite)(
  'outside any unit of work, refused or allowed ($name)',
  (engine) => {
    let t: TestApp;
    let writer: Writer;
    let booted: string[];
    const warnings = new Warnings();

    /** Starts the app with `mode`; `t`, `writer` and `booted` are its. */
    async function startApp(mode: Mode | undefined): Promise<void> {
      ({ t, writer, booted } = await start(engine, mode, warnings));
    }

    describe("outsideUnit: 'throw'", () => {
      beforeAll(() => startApp('throw'));
      beforeEach(() => t.dataSource.query('DELETE FROM example'));
      afterEach(() => t.expectClean());
      afterAll(() => t.close());

      it('onApplicationBootstrap: both statements reject with NoSessionContextError, nothing written', async () => {
        expect(writer.boot).toEqual(['NoSessionContextError', 'NoSessionContextError']);
        expect(booted).toEqual([]);
        expect(warnings.lines).toEqual([]);
      });

      it('a script is refused before anything runs; the message names the call site and the fixes', async () => {
        const refused = script(writer, 'script');
        await expect(refused).rejects.toBeInstanceOf(NoSessionContextError);
        const message = await refused.catch((error: Error) => error.message);
        expect(message).toContain(site('script'));
        expect(message).toContain("data source 'default'");
        expect(message).toContain('@Transactional()');
        expect(message).toContain('sessionFactory.runInNewContext()');
        await expect(writer.viaSession('session')).rejects.toBeInstanceOf(NoSessionContextError);
        await expect(writer.insertThenFail('first')).rejects.toBeInstanceOf(NoSessionContextError);
        await expect(writer.session.query('SELECT 1')).rejects.toBeInstanceOf(
          NoSessionContextError,
        );
        await expect(writer.examples.createQueryBuilder('e').getMany()).rejects.toBeInstanceOf(
          NoSessionContextError,
        );
        expect(await t.rows()).toBe(0);
      });

      it('inside units, a NOT_SUPPORTED block and an explicit transaction it runs', async () => {
        await writer.transactional('decorated');
        await t.app.get(SessionFactory).runInNewContext(() => writer.viaRepository('in_context'));
        await t.http().post('/request').expect(201);
        await writer.notSupported('not_supported');
        await writer.ownTransaction('explicit');
        expect(await t.rows()).toBe(2 + 1 + 2 + 2 + 2);
        expect(writer.reads()[0]).toBe('example');
        expect(warnings.lines).toEqual([]);
      });

      it('a timer after its request ended fails with SessionContextEndedError, as in every mode', async () => {
        await t.http().post('/late').expect(201);
        await expect(writer.late).rejects.toThrow(SessionContextEndedError);
        expect(await t.rows()).toBe(0);
      });

      it('under the testing kit the test body may seed through the repositories', async () => {
        const tx = await TestTransaction.start(t.app);
        try {
          await writer.viaRepository('kit');
          await writer.viaSession('kit_session');
          expect(await writer.examples.count()).toBe(2);
        } finally {
          await tx.rollback();
        }
        expect(await t.rows()).toBe(0);
        await expect(writer.viaRepository('after_kit')).rejects.toBeInstanceOf(
          NoSessionContextError,
        );
      });
    });

    describe("outsideUnit: 'autocommit'", () => {
      beforeAll(() => startApp('autocommit'));
      beforeEach(() => t.dataSource.query("DELETE FROM example WHERE text NOT LIKE 'boot%'"));
      afterEach(() => t.expectClean());
      afterAll(() => t.close());

      it('writes silently, each statement on its own, through the data source’s own manager', async () => {
        expect(writer.boot).toEqual(['done', 'done']);
        expect(booted).toEqual(['boot_repository', 'boot_session']);
        await script(writer, 'script');
        await writer.viaSession('session');
        await expect(writer.insertThenFail('first')).rejects.toThrow();
        expect(writer.examples.manager).toBe(t.dataSource.manager);
        expect(await t.texts()).toEqual([
          'boot_repository',
          'boot_session',
          'first',
          'script',
          'session',
        ]);
        expect(warnings.lines).toEqual([]);
      });

      it('a timer after its request ended fails with SessionContextEndedError, as in every mode', async () => {
        await t.http().post('/late').expect(201);
        await expect(writer.late).rejects.toThrow(SessionContextEndedError);
        expect(await t.texts()).toEqual(['boot_repository', 'boot_session']);
      });
    });

    it('two apps in one process each warn once for the same call site', async () => {
      warnings.lines.length = 0;
      const first = await createApp(engine, 'warn', warnings);
      const second = await createApp(engine, 'warn', warnings);
      try {
        await first.get(DataSource).query('DELETE FROM example');
        const writers = [first.get(Writer), second.get(Writer)];
        for (const each of [...writers, ...writers]) await script(each, 'two_apps');
        const scripted = warnings.lines.filter((line) => line.includes(site('script')));
        expect(scripted).toHaveLength(2);
        // The servers hold both apps' rows in one database; on SQLite in memory each has its own.
        const written = (app: typeof first) =>
          app.get(DataSource).getRepository(Example).countBy({ text: 'two_apps' });
        if (isSqliteEngine(engine))
          expect([await written(first), await written(second)]).toEqual([2, 2]);
        else expect(await written(first)).toBe(4);
      } finally {
        await first.close();
        await second.close();
      }
    });
  },
);

describe('the outsideUnit option', () => {
  it("defaults to 'warn' and accepts only 'autocommit', 'warn' or 'throw'", () => {
    expect(resolveModuleOptions().outsideUnit).toBe('warn');
    for (const mode of ['autocommit', 'warn', 'throw'] as const) {
      expect(resolveModuleOptions({ outsideUnit: mode }).outsideUnit).toBe(mode);
    }
    expect(() => resolveModuleOptions({ outsideUnit: 'ignore' as Mode })).toThrow(
      InvalidOptionError,
    );
    expect(() => resolveModuleOptions({ outsideUnit: 'ignore' as Mode })).toThrow(
      /outsideUnit: 'ignore'.*'autocommit', 'warn' or 'throw'/,
    );
  });
});
