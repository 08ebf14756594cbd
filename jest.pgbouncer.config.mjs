/**
 * The whole suite through a real PgBouncer in transaction pooling mode (`npm run test:pgbouncer`
 * sets PGBOUNCER=1: test/global-setup.ts starts it), plus test/pgbouncer/.
 */
import base from './jest.config.mjs';

/**
 * Specs whose very claim cannot hold through a transaction pooler, each with its reason. None
 * today: every spec passes through PgBouncer (release-on-commit names the pool's connection, not
 * the server pid, for "the same connection"; the outage specs kill the server backend behind a
 * transaction, which PgBouncer reports to its client as a lost connection too). Add a path here
 * only with the reason, never skip a test.
 */
const excluded = [];

export default {
  ...base,
  testPathIgnorePatterns: ['/node_modules/', ...excluded.map(({ path }) => `<rootDir>/${path}`)],
};
