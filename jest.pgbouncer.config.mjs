/**
 * The whole suite through a real PgBouncer in transaction pooling mode (`npm run test:pgbouncer`
 * sets PGBOUNCER=1: test/global-setup.ts starts it), plus test/pgbouncer/.
 */
import base from './jest.config.mjs';

/**
 * Specs whose very claim cannot hold through a transaction pooler, each with its reason (release-
 * on-commit names the pool's connection, not the server pid, for "the same connection"; the outage
 * specs kill the server backend behind an open transaction, which PgBouncer reports to its client
 * as a lost connection too, so they stay). Add a path here only with the reason, never skip a test.
 */
const excluded = [
  {
    path: 'test/correctness/killed-at-edges.e2e-spec.ts',
    reason:
      'kills the server backend just before a BEGIN or a savepoint, between transactions: through ' +
      "a transaction pooler that backend is not the client's connection, which stays up and gets " +
      'another server connection, so there is no lost connection to observe',
  },
  {
    path: 'test/correctness/plain-connection-context.e2e-spec.ts',
    reason:
      "terminates the server backends behind the pool's idle client connections to see in which " +
      "context their 'error' event runs: through a transaction pooler the client connections are " +
      'not those backends and stay up, so no error event comes',
  },
  {
    path: 'test/testing-kit/kit-dead-connection.e2e-spec.ts',
    reason:
      "terminates the server backend behind the pool's idle client connection: through a " +
      'transaction pooler the client connection is not that backend and stays up, so there is no ' +
      'dead pooled connection for TestTransaction.start() to meet',
  },
];

export default {
  ...base,
  testPathIgnorePatterns: [
    ...base.testPathIgnorePatterns.filter((pattern) => pattern !== '<rootDir>/test/pgbouncer/'),
    ...excluded.map(({ path }) => `<rootDir>/${path}`),
  ],
};
