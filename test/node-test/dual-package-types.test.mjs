// Review of the dual package's types (README "Install": "an app that does both still has one copy of
// every class"). At run time Node gives `import` and `require()` the ESM build, one copy of every
// class. Its types do not follow: the `require` condition's types are dist/cjs/*.d.ts and the
// `import` condition's dist/*.d.ts, two declarations of every class. A CommonJS app (nodenext)
// that uses an ESM library built on the package (the library's .d.ts imports it) then cannot pass
// its SessionContext / TestTransaction to the library, nor take one back: TypeScript sees two
// unrelated classes ("Types have separate declarations of a private property"), although they are
// the same object at run time. The app is installed as an app installs it: node_modules/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let app;

/** Runs tsc in the app with `options` on `files`: its output, empty when it compiled. */
function tsc(options, files) {
  try {
    execFileSync(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', ...options, ...files],
      { cwd: app, encoding: 'utf8', stdio: 'pipe' },
    );
    return '';
  } catch (error) {
    return `${error.stdout}${error.stderr}`;
  }
}

describe('one class for TypeScript too, whichever module system loads the package', () => {
  before(() => {
    app = mkdtempSync(join(tmpdir(), 'ntc-dual-types-'));
    const modules = join(app, 'node_modules');
    mkdirSync(modules);
    for (const entry of readdirSync(join(root, 'node_modules'))) {
      if (entry !== '.bin') symlinkSync(join(root, 'node_modules', entry), join(modules, entry));
    }
    symlinkSync(root, join(modules, 'nestjs-typeorm-context'));
    // An ESM library built on the package, as published: JavaScript plus its declarations.
    const lib = join(modules, 'review-esm-lib');
    mkdirSync(lib);
    writeFileSync(
      join(lib, 'package.json'),
      JSON.stringify({ name: 'review-esm-lib', type: 'module', exports: './index.js' }),
    );
    writeFileSync(
      join(lib, 'index.js'),
      'export const useContext = (context) => context;\nexport const useKit = (kit) => kit;\n',
    );
    writeFileSync(
      join(lib, 'index.d.ts'),
      [
        "import type { SessionContext } from 'nestjs-typeorm-context';",
        "import type { TestTransaction } from 'nestjs-typeorm-context/testing';",
        'export declare function useContext(context: SessionContext): SessionContext;',
        'export declare function useKit(kit: TestTransaction): TestTransaction;',
        '',
      ].join('\n'),
    );
    // The CommonJS app (no "type": "module").
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    writeFileSync(
      join(app, 'app.ts'),
      [
        "import { SessionContext } from 'nestjs-typeorm-context';",
        "import type { TestTransaction } from 'nestjs-typeorm-context/testing';",
        "import { useContext, useKit } from 'review-esm-lib';",
        'export function run(context: SessionContext, kit: TestTransaction): void {',
        '  const back: SessionContext = useContext(context);',
        '  const kitBack: TestTransaction = useKit(kit);',
        '  void back;',
        '  void kitBack;',
        '}',
        'export const token = SessionContext;',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(app, 'app-esm-types.ts'),
      [
        "import type { SessionContext } from 'nestjs-typeorm-context' with { 'resolution-mode': 'import' };",
        "import type { TestTransaction } from 'nestjs-typeorm-context/testing' with { 'resolution-mode': 'import' };",
        "import { useContext, useKit } from 'review-esm-lib';",
        'export function run(context: SessionContext, kit: TestTransaction): void {',
        '  const back: SessionContext = useContext(context);',
        '  const kitBack: TestTransaction = useKit(kit);',
        '  void back;',
        '  void kitBack;',
        '}',
        '',
      ].join('\n'),
    );
  });

  after(() => rmSync(app, { recursive: true, force: true }));

  it('a CommonJS app on its own resolves both entry points (nodenext, node10)', () => {
    writeFileSync(
      join(app, 'alone.ts'),
      [
        "import { SessionContext, TypeOrmContextModule } from 'nestjs-typeorm-context';",
        "import { TestTransaction } from 'nestjs-typeorm-context/testing';",
        'export const all = [SessionContext, TypeOrmContextModule, TestTransaction];',
        '',
      ].join('\n'),
    );
    const common = ['--target', 'es2022', '--types', 'node'];
    assert.equal(tsc(['--module', 'nodenext', ...common], ['alone.ts']), '');
    assert.equal(
      tsc(
        [
          '--module',
          'commonjs',
          '--moduleResolution',
          'node10',
          '--ignoreDeprecations',
          '6.0',
          ...common,
        ],
        ['alone.ts'],
      ),
      '',
    );
  });

  it('at run time the CommonJS app, the ESM library and package.json agree: one copy', () => {
    writeFileSync(
      join(app, 'run.cjs'),
      [
        "require('reflect-metadata');",
        "const core = require('nestjs-typeorm-context');",
        "const kit = require('nestjs-typeorm-context/testing');",
        "const lib = require('review-esm-lib-reexport');",
        "const pkg = require('nestjs-typeorm-context/package.json');",
        'console.log(JSON.stringify([core.SessionContext === lib.SessionContext,',
        '  kit.TestTransaction === lib.TestTransaction, pkg.name]));',
        '',
      ].join('\n'),
    );
    const lib = join(app, 'node_modules', 'review-esm-lib-reexport');
    mkdirSync(lib);
    writeFileSync(
      join(lib, 'package.json'),
      JSON.stringify({ name: 'review-esm-lib-reexport', type: 'module', exports: './index.js' }),
    );
    writeFileSync(
      join(lib, 'index.js'),
      "export { SessionContext } from 'nestjs-typeorm-context';\nexport { TestTransaction } from 'nestjs-typeorm-context/testing';\n",
    );
    const out = execFileSync(process.execPath, ['run.cjs'], { cwd: app, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), [true, true, 'nestjs-typeorm-context']);
  });

  // The CommonJS build's declarations are its own (TypeScript before 5.8, and module node16, cannot
  // let a CommonJS file use ESM declarations), so TypeScript sees two declarations of each class.
  // An app that hands its objects to an ESM library built on the package takes the types from the
  // ESM declarations, as README's "Install" says.
  it('a CommonJS app (nodenext) passes its SessionContext and TestTransaction to an ESM library built on the package, with the types taken from the ESM declarations', () => {
    const output = tsc(
      ['--module', 'nodenext', '--target', 'es2022', '--types', 'node'],
      ['app-esm-types.ts'],
    );
    assert.equal(output, '', output);
  });
});
