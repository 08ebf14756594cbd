import type { EntityManager } from 'typeorm';
import { ReplicaWriteError, SessionFactory } from '../../src/index.js';
import { countOnPrimary, createReplicaApp, type ReplicaApp } from './replica-app.js';
import { ReplicaService } from './replica.controller.js';
import { ReplicaItem, where } from './replica-item.js';

describe('Read replicas: a write in a replica transaction', () => {
  let t: ReplicaApp;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createReplicaApp();
    factory = t.app.get(SessionFactory);
    await t.dataSource.query('DELETE FROM replica_item');
    await t.dataSource.getRepository(ReplicaItem).insert({ text: 'seed' });
    await t.replayed();
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  /** Runs `write` in a read-only atomic on the replica; returns its error and proof the transaction went on. */
  async function attempt(write: (manager: EntityManager) => Promise<unknown>) {
    return factory.atomic(
      async (manager) => {
        const error = await write(manager).then(
          () => undefined,
          (caught: unknown) => caught,
        );
        // Refused before it was sent: the transaction is not aborted, the next read works.
        return { error, after: await where(manager), seed: await manager.countBy(ReplicaItem, {}) };
      },
      { readOnly: true },
    );
  }

  it.each([
    ['insert()', (m: EntityManager) => m.insert(ReplicaItem, { text: 'x' })],
    ['save()', (m: EntityManager) => m.save(ReplicaItem, { text: 'x' })],
    ['update()', (m: EntityManager) => m.update(ReplicaItem, { text: 'seed' }, { text: 'y' })],
    ['delete()', (m: EntityManager) => m.delete(ReplicaItem, { text: 'seed' })],
    ['clear()', (m: EntityManager) => m.clear(ReplicaItem)],
    [
      'a commented query builder update',
      (m: EntityManager) =>
        m.createQueryBuilder().comment('bulk').update(ReplicaItem).set({ text: 'z' }).execute(),
    ],
    ['raw INSERT', (m: EntityManager) => m.query("INSERT INTO replica_item (text) VALUES ('raw')")],
  ])('%s fails with ReplicaWriteError before it is sent', async (_name, write) => {
    const { error, after, seed } = await attempt(write);
    expect(error).toBeInstanceOf(ReplicaWriteError);
    const message = (error as Error).message;
    expect(message).toContain("data source 'default' begun by sessionFactory.atomic()");
    expect(message).toContain('readOnly: true');
    expect((error as Error).cause).toBeUndefined();
    expect(after.replica).toBe(true);
    expect(seed).toBe(1);
  });

  it.each([
    ['nextval()', "SELECT nextval('replica_item_id_seq')", 'nextval()'],
    [
      'a writing CTE',
      "WITH w AS (INSERT INTO replica_item (text) VALUES ('cte') RETURNING id) SELECT id FROM w",
      'SELECT', // the server names the top-level statement,
    ],
    ['SELECT FOR UPDATE', 'SELECT id FROM replica_item FOR UPDATE', 'SELECT FOR UPDATE'],
  ])(
    'raw SQL the server refuses (%s) becomes ReplicaWriteError with its cause',
    async (_name, sql, what) => {
      const failure = await factory
        .atomic((manager) => manager.query(sql), { readOnly: true })
        .catch((caught: unknown) => caught);
      expect(failure).toBeInstanceOf(ReplicaWriteError);
      expect((failure as Error).message).toMatch(
        new RegExp(`^${what.replace(/[()]/g, '\\$&')} refused`),
      );
      expect(((failure as Error).cause as { driverError: { code: string } }).driverError.code).toBe(
        '25006',
      );
    },
  );

  it('a read-only @Transactional method names itself; over HTTP the request fails and nothing is written', async () => {
    const { body } = await t.http().post('/bad-write').expect(500);
    expect(body).toBeDefined();
    const failure = await t.app
      .get(ReplicaService)
      .badWrite()
      .catch((caught: unknown) => caught);
    expect(failure).toBeInstanceOf(ReplicaWriteError);
    expect((failure as Error).message).toContain('begun by ReplicaService.badWrite()');
    expect(await countOnPrimary(t.dataSource, 'never')).toBe(0);
  });

  it('readOnly on the primary (replica: false) still lets the database refuse, as before', async () => {
    const failure = await factory
      .atomic((manager) => manager.insert(ReplicaItem, { text: 'x' }), {
        readOnly: true,
        replica: false,
      })
      .catch((caught: unknown) => caught);
    expect(failure).not.toBeInstanceOf(ReplicaWriteError);
    expect((failure as { driverError: { code: string } }).driverError.code).toBe('25006');
  });
});
