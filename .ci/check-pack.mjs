// What `npm pack` ships, checked: packs the package as `npm publish` would (its `prepack` builds
// dist/ from scratch, so a fresh clone packs a complete package), then fails unless every file that
// package.json's `exports`, `main`, `types` and `typesVersions` name is in the tarball, with
// dist/cjs/package.json (which makes dist/cjs/ CommonJS), and unless nothing of test/, sample/,
// bench/, consumers/, scripts/, src/ or a spec is. With --into, prints the tarball's path on stdout.
//
// Usage: node .ci/check-pack.mjs [--into <dir>]   (without --into, a temporary dir, removed after)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const at = process.argv.indexOf('--into');
const into = at > 0 ? resolve(process.argv[at + 1]) : mkdtempSync(join(tmpdir(), 'check-pack-'));
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));

const problems = [];
if (!pkg.scripts?.prepack)
  problems.push('package.json has no `prepack`: `npm pack` would ship a stale or no dist/');

// The build's own output goes to stderr: stdout is npm's JSON.
const out = execFileSync('npm', ['pack', '--json', '--pack-destination', into], {
  cwd: repo,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [{ filename, files, size, unpackedSize, entryCount }] = JSON.parse(out);
const shipped = new Set(files.map((file) => file.path));

/** Every path a package.json field names (`./dist/x.js` → `dist/x.js`). */
function named(value, found = new Set()) {
  if (typeof value === 'string') found.add(value.replace(/^\.\//, ''));
  else if (Array.isArray(value)) value.forEach((item) => named(item, found));
  else if (value && typeof value === 'object')
    Object.values(value).forEach((item) => named(item, found));
  return found;
}
const required = named([pkg.exports, pkg.main, pkg.types, pkg.typesVersions]);
required.add('dist/cjs/package.json');
for (const file of required) {
  if (!shipped.has(file)) problems.push(`${file} is named by package.json but not in the tarball`);
}
const forbidden = /^(test|sample|bench|consumers|scripts|src|\.ci)\/|\.(e2e-)?spec\.[cm]?[jt]s/;
for (const file of shipped) {
  if (forbidden.test(file)) problems.push(`${file} is in the tarball and should not be`);
}

const tarball = join(into, filename);
console.error(
  `check-pack: ${filename}: ${entryCount} files, ${(size / 1024).toFixed(0)} kB packed, ` +
    `${(unpackedSize / 1024).toFixed(0)} kB unpacked; ${required.size} files named by package.json present`,
);
if (at < 0) rmSync(into, { recursive: true, force: true });
if (problems.length > 0) {
  for (const problem of problems) console.error(`check-pack: ${problem}`);
  process.exit(1);
}
if (at > 0) console.log(tarball);
