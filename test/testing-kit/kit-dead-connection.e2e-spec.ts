import { DataSource } from 'typeorm';
import { TestTransaction } from '../../src/testing/index.js';
import { closeApp, HANG_MS, within } from '../correctness/support-b.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';

const postgres = engines.find((engine) => engine.name === 'postgres')!;

/** pg-pool's clients, as far as this test reaches into them. */
interface PgPoolClients {
  _clients: Array<{ connection: { stream: { pause(): void; resume(): void } } }>;
}

/**
 * The pool's idle connection was terminated by the server (an idle timeout, a restart, an admin)
 * and the driver has not read the server's goodbye yet when the next test begins: the test's
 * transaction must begin on another connection instead of failing the test with the server's
 * "terminating connection" error (found by the randomized test, between two programs).
 */
describe('TestTransaction.start() on a pool whose idle connection the server terminated (postgres)', () => {
  let t: TestApp | undefined;
  let admin: DataSource;

  beforeAll(async () => {
    t = await createTestApp(postgres, { poolSize: 1 });
    admin = await new DataSource({ ...postgres.options, poolSize: 1, logging: false }).initialize();
  });
  afterAll(async () => {
    await admin.destroy();
    await closeApp(t, postgres);
  });

  it('begins the test on a fresh connection, and its rollback leaves nothing', async () => {
    const [{ pid }] = (await t!.dataSource.query('SELECT pg_backend_pid() AS pid')) as [
      { pid: number },
    ];
    // The idle connection's socket is not read until the test begins: the goodbye waits there.
    const pool = (t!.dataSource.driver as unknown as { master: PgPoolClients }).master;
    const socket = pool._clients[0]!.connection.stream;
    socket.pause();
    await admin.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
    const started = TestTransaction.start(t!.app);
    setImmediate(() => socket.resume());
    const tx = await within(HANG_MS, 'TestTransaction.start()', started);
    await t!.dataSource.query(`INSERT INTO example (text) VALUES ('inside the test')`);
    expect(await t!.texts()).toEqual(['inside the test']);
    await tx.rollback();
    const left: Array<{ n: string }> = await admin.query('SELECT count(*) AS n FROM example');
    expect(Number(left[0]!.n)).toBe(0);
    await t!.expectClean();
  });
});
