import { EntityManager } from 'typeorm';
import {
  NoSessionContextError,
  SessionContextEndedError,
  SessionFactory,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { eventually, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  builtOutside,
  type Mode,
  repeated,
  script,
  site,
  start,
  Warnings,
  type Writer,
} from './outside-unit-app.js';

describe.each(enginesAndSqlite)('outside any unit of work, warned about ($name)', (engine) => {
  let t: TestApp;
  let writer: Writer;
  let booted: string[];
  const warnings = new Warnings();

  /** Starts the app with `mode`; `t`, `writer` and `booted` are its. */
  async function startApp(mode: Mode | undefined): Promise<void> {
    ({ t, writer, booted } = await start(engine, mode, warnings));
  }

  /** Warnings logged while `work` ran. */
  async function warnedDuring(work: () => Promise<unknown>): Promise<string[]> {
    const before = warnings.lines.length;
    await work();
    return warnings.lines.slice(before);
  }

  describe("outsideUnit: 'warn' (the default)", () => {
    beforeAll(() => startApp(undefined));
    beforeEach(() => t.dataSource.query("DELETE FROM example WHERE text NOT LIKE 'boot%'"));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('onApplicationBootstrap writes, each statement on its own, and warns once per call site', async () => {
      expect(writer.boot).toEqual(['done', 'done']);
      expect(booted).toEqual(['boot_repository', 'boot_session']);
      expect(warnings.lines).toHaveLength(2);
      expect(warnings.lines[0]).toContain(site('boot_repository'));
      expect(warnings.lines[1]).toContain(site('boot_session'));
      for (const line of warnings.lines) {
        expect(line).toContain("data source 'default'");
        expect(line).toContain('@Transactional()');
        expect(line).toContain('sessionFactory.runInNewContext()');
        expect(line).toContain("outsideUnit: 'autocommit'");
      }
      expect(warnings.lines[0]).not.toBe(warnings.lines[1]);
    });

    it('a script: the same call site ten times warns once, and every row is written', async () => {
      const logged = await warnedDuring(() => repeated(writer, 10));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(site('repeated'));
      expect(await t.rows()).toBe(12);
      expect(await warnedDuring(() => repeated(writer, 3))).toEqual([]);
    });

    it('two call sites warn twice, once each, also when they run at once', async () => {
      const logged = await warnedDuring(() =>
        Promise.all([
          script(writer, 'one'),
          writer.viaSession('two'),
          script(writer, 'three'),
          writer.viaSession('four'),
        ]),
      );
      expect(logged).toHaveLength(2);
      expect(logged.filter((line) => line.includes(site('script')))).toHaveLength(1);
      expect(logged.filter((line) => line.includes(site('viaSession')))).toHaveLength(1);
      expect(await t.texts()).toEqual([
        'boot_repository',
        'boot_session',
        'four',
        'one',
        'three',
        'two',
      ]);
    });

    it('a custom repository’s method is the call site of the statements it sends', async () => {
      const logged = await warnedDuring(async () => {
        await writer.custom.addText('custom');
        await writer.custom.addText('custom_again');
      });
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(site('custom'));
      expect(await t.texts()).toEqual([
        'boot_repository',
        'boot_session',
        'custom',
        'custom_again',
      ]);
    });

    it('a query builder built outside a unit runs outside it, also when run inside one: warned', async () => {
      const builder = builtOutside(writer, 'built_outside');
      const logged = await warnedDuring(() =>
        expect(
          t.app.get(SessionFactory).runInNewContext(async () => {
            await builder.execute();
            throw new Error('the unit rolls back');
          }),
        ).rejects.toThrow('the unit rolls back'),
      );
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(site('builder'));
      expect(await t.texts()).toContain('built_outside'); // autocommitted, not rolled back
    });

    it('statements outside a unit autocommit: the first stays when the second fails', async () => {
      await expect(writer.insertThenFail('first')).rejects.toThrow();
      expect(await t.texts()).toContain('first');
    });

    it('inside units nothing is logged: @Transactional(), runInNewContext(), sessionFactory.atomic(), a request', async () => {
      const logged = await warnedDuring(async () => {
        await writer.transactional('decorated');
        await t.app.get(SessionFactory).runInNewContext(async () => {
          await writer.viaRepository('in_context');
          await writer.viaSession('in_context_session');
        });
        await t.app.get(SessionFactory).atomic(async () => {
          await writer.viaRepository('atomic');
          await writer.viaSession('atomic_session');
        });
        await t.http().post('/request').expect(201);
      });
      expect(logged).toEqual([]);
      expect(await t.rows()).toBe(2 + 8);
    });

    it('a NOT_SUPPORTED (or SUPPORTS) block uses the plain manager deliberately: no warning', async () => {
      const logged = await warnedDuring(async () => {
        await writer.notSupported('outside'); // outside any unit
        await t.app.get(SessionFactory).runInNewContext(() => writer.notSupported('suspending'));
        await writer.supports('supports'); // outside any unit: no transaction, on purpose
      });
      expect(logged).toEqual([]);
      expect(await t.rows()).toBe(2 + 4 + 1);
    });

    it('reads that run no SQL and Nest-style probes never warn', async () => {
      const logged = await warnedDuring(async () => {
        expect(writer.reads()[0]).toBe('example');
        const probed = writer.session as unknown as Record<string, unknown>;
        expect(probed.then).toBeUndefined();
        expect(probed.onModuleInit).toBeUndefined();
        expect(writer.session instanceof EntityManager).toBe(true);
        expect('find' in writer.session).toBe(true);
      });
      expect(logged).toEqual([]);
    });

    it('an explicit manager.transaction() is atomic, not silent autocommit: no warning', async () => {
      const logged = await warnedDuring(async () => {
        await writer.ownTransaction('explicit');
        await writer.sessionTransaction('explicit_session');
      });
      expect(logged).toEqual([]);
      expect(await t.texts()).toEqual([
        'boot_repository',
        'boot_session',
        'explicit',
        'explicit_2',
        'explicit_session',
      ]);
    });

    it('a timer after its request ended still fails with SessionContextEndedError, nothing written', async () => {
      const logged = await warnedDuring(async () => {
        await t.http().post('/late').expect(201);
        await expect(writer.late).rejects.toThrow(SessionContextEndedError);
      });
      expect(logged).toEqual([]);
      expect(await t.rows()).toBe(2);
    });

    it('an afterCommit callback runs outside any unit: its write autocommits and is warned about', async () => {
      const logged = await warnedDuring(async () => {
        await t.http().post('/callback').expect(201);
        await eventually(async () => (await t.texts()).includes('after_commit'));
      });
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(site('viaRepository'));
    });

    it('sessionContext.session() outside any context still throws NoSessionContextError at once', () => {
      expect(() => writer.context.session()).toThrow(NoSessionContextError);
    });

    it('under the testing kit the test body’s own use outside a unit runs in the test’s transaction, unwarned', async () => {
      const tx = await TestTransaction.start(t.app);
      let logged: string[];
      try {
        logged = await warnedDuring(async () => {
          await writer.examples.insert({ text: 'kit_repository' });
          await writer.session.insert(Example, { text: 'kit_session' });
          await writer.examples.save({ text: 'kit_save' });
          await t.http().post('/request').expect(201);
        });
        expect(await writer.examples.count()).toBe(2 + 5);
      } finally {
        await tx.rollback();
      }
      expect(logged).toEqual([]);
      expect(await t.rows()).toBe(2);
      // Once the test transaction is rolled back, the pool is back: so is the warning.
      const after = await warnedDuring(() => writer.examples.insert({ text: 'after_kit' }));
      expect(after).toHaveLength(1);
    });
  });
});
