import { readFileSync } from 'node:fs';

/** Jest in ESM mode (NestJS 12 is ESM-only); TypeScript through SWC with decorator metadata. */
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true, explicitResourceManagement: true },
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

/**
 * Specs about MySQL/MariaDB alone (implicit commits of DDL, InnoDB deadlocks in the testing kit):
 * without MYSQL_URL there is nothing for them to run on.
 */
const mariadbOnly = [
  'test/correctness/implicit-commit.e2e-spec.ts',
  'test/correctness/implicit-commit-failures.e2e-spec.ts',
  'test/testing-kit/kit-implicit-commit.e2e-spec.ts',
  'test/testing-kit/kit-subscriber-deadlock.e2e-spec.ts',
  'test/replicas/mariadb-replication.e2e-spec.ts',
];

/**
 * Specs about Nest 12 behaviour: from Nest 12, global interceptors reach WebSocket gateways (Nest
 * 11's gateways need `@UseInterceptors(AutoCommitInterceptor)`, docs/transports.md).
 */
const nest12Only = ['test/transports/ws-global-interceptor.e2e-spec.ts'];
const nestMajor = Number(
  JSON.parse(readFileSync(new URL('./node_modules/@nestjs/core/package.json', import.meta.url)))
    .version.split('.')[0],
);

export default {
  testEnvironment: 'node',
  // TypeORM keeps its decorator metadata in one process-wide global by design (as it does in an
  // app): Jest's clean-up of globals between files would only warn that it is still read.
  testEnvironmentOptions: { globalsCleanup: 'off' },
  // One test file at a time (they share the databases), in a worker Jest replaces once it holds
  // more than 2 GB after a file: one process running every file in band kept each file's module
  // graph (TypeORM's and Nest's metadata) and grew past 6 GB, where garbage collection pauses made
  // hooks time out. `--runInBand` on the command line still runs a focused set in this process.
  maxWorkers: 1,
  workerIdleMemoryLimit: '2GB',
  rootDir: '.',
  roots: ['<rootDir>/src', '<rootDir>/test', '<rootDir>/sample'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  // test/pgbouncer/ needs the pgbouncer binary: `npm run test:pgbouncer` (jest.pgbouncer.config.mjs).
  testPathIgnorePatterns: [
    '/node_modules/',
    '<rootDir>/test/pgbouncer/',
    ...(process.env.MYSQL_URL ? [] : mariadbOnly.map((path) => `<rootDir>/${path}`)),
    ...(nestMajor >= 12 ? [] : nest12Only.map((path) => `<rootDir>/${path}`)),
  ],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // The sample imports the package by its name, as an app does: the tests run it from src/.
    '^nestjs-typeorm-context$': '<rootDir>/src/index.ts',
    '^nestjs-typeorm-context/testing$': '<rootDir>/src/testing/index.ts',
    // mercurius loads @fastify/static, whose content-disposition 3 is ESM only: see the shim.
    '^content-disposition$': '<rootDir>/test/support/content-disposition.cjs',
  },
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 30000,
};
