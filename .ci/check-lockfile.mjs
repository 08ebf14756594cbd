// Fails when a lockfile names an optional dependency (a platform build such as
// @swc/core-darwin-arm64) that it does not list itself. npm drops other platforms' builds when it
// writes a lockfile over an existing node_modules, and `npm ci` on those platforms then fails.
// Fix: rm -rf node_modules package-lock.json && npm install
import { readFileSync } from 'node:fs';

let failed = false;
for (const file of process.argv.slice(2)) {
  const lock = JSON.parse(readFileSync(file, 'utf8'));
  const packages = lock.packages ?? {};
  const listed = new Set(Object.keys(packages).map((key) => key.replace(/^.*node_modules\//, '')));
  const missing = new Set();
  for (const entry of Object.values(packages)) {
    for (const name of Object.keys(entry.optionalDependencies ?? {})) {
      if (!listed.has(name)) missing.add(name);
    }
  }
  if (missing.size > 0) {
    failed = true;
    console.error(
      `${file} lacks ${missing.size} optional build(s) it names: ${[...missing].join(', ')}.\n` +
        'Rewrite it from scratch: rm -rf node_modules package-lock.json && npm install',
    );
  }
}
process.exit(failed ? 1 : 0);
