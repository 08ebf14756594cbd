import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, type LoggerService } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { NoSessionContextError, TypeOrmContextModule } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp } from '../correctness/support-b.js';

/** Keeps the library's warnings (the `TypeOrmContext` logger's). */
class WarningLog implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
  outsideUnit(): string[] {
    return this.warnings.filter((line) => line.includes('outside any unit of work'));
  }
}

/** A generic base service, as many Nest apps have one: every entity service extends it. */
abstract class CrudService {
  protected abstract readonly repository: Repository<Example>;

  count(): Promise<number> {
    return this.repository.count(); // ONE line of the application's code
  }
}

@Injectable()
class DraftsService extends CrudService {
  constructor(@InjectRepository(Example) protected readonly repository: Repository<Example>) {
    super();
  }
}

@Injectable()
class ArchiveService extends CrudService {
  constructor(@InjectRepository(Example) protected readonly repository: Repository<Example>) {
    super();
  }
}

@Injectable()
class Seeder {
  constructor(@InjectRepository(Example) readonly examples: Repository<Example>) {}
}

/**
 * A helper package in node_modules that runs a repository for the caller, as `nestjs-paginate`
 * (`paginate(query, repository, config)`) and `nestjs-typeorm-paginate` do. Written at run time
 * (node_modules is not committed).
 */
async function paginatePackage(): Promise<{
  paginate: (repository: Repository<Example>, page: number) => Promise<Example[]>;
}> {
  const root = mkdtempSync(join(tmpdir(), 'ntc-outside-unit-'));
  const dir = join(root, 'node_modules', 'paginate-like');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'index.mjs'),
    'export function paginate(repository, page) {\n' +
      '  return repository.find({ take: 10, skip: page * 10 });\n' +
      '}\n',
  );
  return (await import(join(dir, 'index.mjs'))) as never;
}

describe.each(enginesAndSqlite)('outside-unit call sites ($name)', (engine: Engine) => {
  let t: TestApp | undefined;
  let log: WarningLog;

  beforeEach(async () => {
    t = await createTestApp(engine, {
      imports: [TypeOrmContextModule.forFeature([Example])],
      providers: [DraftsService, ArchiveService, Seeder],
    });
    log = new WarningLog();
    t.app.useLogger(log);
  });

  afterEach(() => closeApp(t, engine));

  /**
   * docs/repositories.md, `outsideUnit: 'warn'`: a warning "once per call site (the line of your
   * code that called the repository or manager: one line called ten times warns once, two lines
   * warn twice)". The call site is deduplicated by V8's frame text, which starts with the
   * receiver's class name: one line of a base class run for two subclasses warns twice (once per
   * subclass: `DraftsService.count`, `ArchiveService.count`), and as often as there are subclasses.
   */
  it('one line of a base class, called through two subclasses, warns once', async () => {
    await t!.app.get(DraftsService).count();
    await t!.app.get(ArchiveService).count();
    await t!.app.get(DraftsService).count();
    expect(log.outsideUnit()).toHaveLength(1);
  });

  /**
   * docs/repositories.md: the warning names "the line of your code that called the repository";
   * "two lines warn twice". Frames of any package in node_modules but TypeORM are taken for the
   * application's: a helper package that runs the repository for the caller (nestjs-paginate's
   * `paginate()`) is named instead of the caller, and every caller of it shares one warning.
   */
  it("names the application's lines, not a helper package's, and warns once per line", async () => {
    const { paginate } = await paginatePackage();
    const examples = t!.app.get(Seeder).examples;
    await paginate(examples, 0); // first line of the application
    await paginate(examples, 1); // second line of the application
    const warnings = log.outsideUnit();
    expect(warnings).toHaveLength(2);
    for (const warning of warnings) {
      expect(warning).toContain('outside-unit-call-sites.e2e-spec.ts');
      expect(warning).not.toContain('node_modules');
    }
  });
});

describe.each(enginesAndSqlite)(
  "outsideUnit 'throw' through manager.connection ($name)",
  (engine) => {
    let t: TestApp | undefined;

    beforeEach(async () => {
      t = await createTestApp(engine, {
        imports: [TypeOrmContextModule.forFeature([Example])],
        providers: [Seeder],
        context: { outsideUnit: 'throw' },
      });
    });

    afterEach(() => closeApp(t, engine));

    /**
     * docs/repositories.md: with 'throw', a statement of a context-aware repository outside any unit
     * "fails with NoSessionContextError (the promise rejects) ...; nothing is sent to the database",
     * and "a query runner taken from such a manager (`repo.manager.connection.createQueryRunner()`)
     * counts as a statement outside a unit". So `repo.manager.connection.query()` is refused, but
     * the same `repo.manager.connection`'s `getRepository()` and `manager` reach the data source's
     * own manager: their statements are sent, auto-committed, with no error and no warning.
     */
    it.each([
      [
        'connection.getRepository()',
        (r: Repository<Example>) =>
          r.manager.connection.getRepository(Example).insert({ text: 'sent' }),
      ],
      [
        'connection.manager',
        (r: Repository<Example>) => r.manager.connection.manager.insert(Example, { text: 'sent' }),
      ],
    ])('refuses a statement through repo.manager.%s, sending nothing', async (_how, write) => {
      const examples = t!.app.get(Seeder).examples;
      await expect(examples.manager.connection.query('SELECT 1')).rejects.toBeInstanceOf(
        NoSessionContextError,
      );
      await expect(write(examples)).rejects.toBeInstanceOf(NoSessionContextError);
      expect(await t!.rows()).toBe(0);
    });
  },
);
