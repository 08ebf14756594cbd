// After the two compilations of `npm run build` (ESM in dist/, CommonJS in dist/cjs/): marks
// dist/cjs/ as CommonJS (the package's own "type" is "module") and checks that both builds' entry
// points export the same names, so the `require` condition never lacks what `import` has.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
writeFileSync(join(root, 'dist/cjs/package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);

const require = createRequire(import.meta.url);
const { exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const [subpath, conditions] of Object.entries(exports)) {
  if (typeof conditions === 'string') continue;
  const esm = Object.keys(await import(pathToFileURL(join(root, conditions.import.default)).href));
  const cjs = Object.keys(require(join(root, conditions.require.default)));
  const missing = esm.filter((name) => !cjs.includes(name));
  const extra = cjs.filter((name) => !esm.includes(name) && name !== '__esModule');
  if (missing.length > 0 || extra.length > 0) {
    console.error(`build-cjs: ${subpath}: only ESM has [${missing}], only CommonJS has [${extra}]`);
    process.exit(1);
  }
}
