// Type-checks every ```ts block of README.md and docs/*.md as a user would write it, so a snippet
// cannot rot: each block is its own module, compiled against the BUILT package (dist/*.d.ts, run
// `npm run build` first) and this repository's node_modules, three times: as a CommonJS app
// (module commonjs, moduleResolution node10: dist/cjs/*.d.ts through `types`/`typesVersions`), as
// an ESM app (module/moduleResolution nodenext: dist/*.d.ts through the `import` condition) and as
// the Nest 11 CLI's CommonJS app (nodenext without "type": dist/cjs/ through `require`).
// A block whose first line is `// partial: <why>` is a deliberate fragment and is skipped.
// Errors read `docs/x.md:42 (block 3) TS2304: ... [commonjs, nodenext]`: the markdown line of the
// error, the block's rank among the file's ts blocks, and the modes it fails in.
//
// Usage: node .ci/check-snippets.mjs [--keep]   (--keep leaves the scratch project for `tsc -p`)
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const started = performance.now();
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');

function fail(message) {
  console.error(`check-snippets: ${message}`);
  process.exit(2);
}

for (const file of [
  'dist/index.d.ts',
  'dist/testing/index.d.ts',
  'dist/cjs/index.d.ts',
  'dist/cjs/testing/index.d.ts',
]) {
  if (!existsSync(join(repo, file))) {
    fail(
      `${file} is missing: the snippets compile against the built package; run \`npm run build\` first.`,
    );
  }
}
if (!existsSync(join(repo, 'node_modules/typescript'))) {
  fail('node_modules/typescript is missing: run `npm ci` first.');
}
const ts = createRequire(join(repo, 'package.json'))('typescript');

// ---- 1. Extract the blocks ------------------------------------------------------------------

const PARTIAL = /^\/\/ partial\b/;
const markdownFiles = [
  'README.md',
  ...readdirSync(join(repo, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

/** Every fenced code block of a markdown file, with its 1-based line and its language. */
function fencedBlocks(markdown, file) {
  const lines = markdown.split('\n');
  const blocks = [];
  let open; // { indent, fence, lang, line, body }
  lines.forEach((line, index) => {
    if (open === undefined) {
      const start = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
      if (start) {
        open = {
          indent: start[1].length,
          fence: start[2],
          lang: start[3],
          line: index + 1,
          body: [],
        };
      }
      return;
    }
    const end = /^\s*(`{3,}|~{3,})\s*$/.exec(line);
    if (end && end[1][0] === open.fence[0] && end[1].length >= open.fence.length) {
      blocks.push(open);
      open = undefined;
      return;
    }
    // A fence indented in a list item: its content carries the same indentation.
    const strip = Math.min(open.indent, /^ */.exec(line)[0].length);
    open.body.push(line.slice(strip));
  });
  if (open !== undefined) fail(`${file}:${open.line}: this code fence is never closed.`);
  return blocks;
}

const snippets = []; // { file, block, line, code, name }
const problems = [];
let partial = 0;
for (const file of markdownFiles) {
  let block = 0;
  for (const { lang, line, body } of fencedBlocks(readFileSync(join(repo, file), 'utf8'), file)) {
    if (lang !== 'ts' && lang !== 'typescript') continue;
    block += 1;
    if (PARTIAL.test(body[0] ?? '')) {
      partial += 1;
      if (!/^\/\/ partial: \S/.test(body[0])) {
        problems.push(
          `${file}:${line + 1} (block ${block}) a partial block says why: // partial: <why>`,
        );
      }
      continue;
    }
    const name = `${file.replace(/\.md$/, '').replace(/[^A-Za-z0-9]+/g, '-')}-${block}.ts`;
    snippets.push({ file, block, line: line + 1, code: `${body.join('\n')}\n`, name });
  }
}

// ---- 2. A scratch project per module mode, outside the repository ---------------------------

const scratch = mkdtempSync(join(tmpdir(), 'check-snippets-'));
const modules = join(scratch, 'node_modules');
mkdirSync(modules);
// What a user's app would have installed: the package itself, resolved through its package.json
// (`types`, and `exports` under nodenext) to dist/, and everything else from this repository.
symlinkSync(repo, join(modules, 'nestjs-typeorm-context'), 'dir');
for (const entry of readdirSync(join(repo, 'node_modules'))) {
  if (entry.startsWith('.') || entry === 'nestjs-typeorm-context') continue;
  symlinkSync(join(repo, 'node_modules', entry), join(modules, entry));
}

const common = {
  noEmit: true,
  strict: true,
  skipLibCheck: true,
  esModuleInterop: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  target: 'es2022',
  lib: ['es2022', 'esnext.disposable'],
  types: ['node'],
  moduleDetection: 'force', // a snippet without import/export is still a module of its own
};
const modes = {
  commonjs: {
    type: 'commonjs',
    compilerOptions: {
      ...common,
      module: 'commonjs',
      moduleResolution: 'node10',
      // node10 is deprecated (not yet removed) in TypeScript 6, where CommonJS apps still use it.
      ...(ts.versionMajorMinor.startsWith('6.') ? { ignoreDeprecations: '6.0' } : {}),
    },
  },
  nodenext: {
    type: 'module',
    compilerOptions: { ...common, module: 'nodenext', moduleResolution: 'nodenext' },
  },
  // The Nest 11 CLI's app: CommonJS (no "type") with module nodenext, so the `require` condition.
  'nodenext-cjs': {
    type: 'commonjs',
    compilerOptions: { ...common, module: 'nodenext', moduleResolution: 'nodenext' },
  },
};

const errors = new Map(); // "where message\0position" -> { key, modes }
const bySnippet = new Map(snippets.map((snippet) => [snippet.name, snippet]));
try {
  for (const [mode, { type, compilerOptions }] of Object.entries(modes)) {
    const dir = join(scratch, mode);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions, include: ['*.ts'] }, null, 2),
    );
    for (const { name, code } of snippets) writeFileSync(join(dir, name), code);

    const config = ts.getParsedCommandLineOfConfigFile(join(dir, 'tsconfig.json'), undefined, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => report(mode, diagnostic, dir),
    });
    for (const diagnostic of config?.errors ?? []) report(mode, diagnostic, dir);
    if (config === undefined) continue;
    const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) report(mode, diagnostic, dir);
  }
} finally {
  if (keep) console.log(`check-snippets: scratch project kept in ${scratch}`);
  else rmSync(scratch, { recursive: true, force: true });
}

/** Records a diagnostic at its markdown line when it is in a snippet, else at its own file. */
function report(mode, diagnostic, dir) {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n  ');
  let where = `${mode}/tsconfig.json`;
  if (diagnostic.file !== undefined) {
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    const inScratch = relative(dir, diagnostic.file.fileName);
    const snippet = inScratch.includes('/') ? undefined : bySnippet.get(inScratch);
    where =
      snippet === undefined
        ? `${diagnostic.file.fileName}:${line + 1}`
        : `${snippet.file}:${snippet.line + line} (block ${snippet.block})`;
  }
  // One line per error, whichever modes it shows in (two on one line stay two).
  const key = `${where} TS${diagnostic.code}: ${message}`;
  const at = `${key}\0${diagnostic.start}`;
  if (!errors.has(at)) errors.set(at, { key, modes: new Set() });
  errors.get(at).modes.add(mode);
}

// ---- 3. Report ------------------------------------------------------------------------------

for (const problem of problems) console.error(problem);
for (const { key, modes: inModes } of errors.values()) {
  console.error(`${key} [${[...inModes].join(', ')}]`);
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const summary =
  `${snippets.length} ts blocks checked as CommonJS (node10 and nodenext) and as ESM (nodenext), ` +
  `${partial} marked partial skipped, in ${seconds} s`;
if (errors.size > 0 || problems.length > 0) {
  console.error(`check-snippets: ${errors.size + problems.length} error(s); ${summary}.`);
  process.exit(1);
}
console.log(`check-snippets: ${summary}.`);
