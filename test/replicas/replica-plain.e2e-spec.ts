import { ReplicaWriteError, SessionFactory } from '../../src/index.js';
import { countOnPrimary, createReplicaApp, pair, portOf, type ReplicaApp } from './replica-app.js';
import { ReplicaItem, type Where, where } from './replica-item.js';

/** plainTypeorm: 'join' on a replicated data source: plain TypeORM follows the unit's routing. */
describe("Read replicas: plain TypeORM with plainTypeorm: 'join'", () => {
  let t: ReplicaApp;
  let factory: SessionFactory;
  const { primary: primaryUrl, replica: replicaUrl } = pair();
  const onPrimary: Where = { replica: false, port: portOf(primaryUrl) };
  const onReplica: Where = { replica: true, port: portOf(replicaUrl) };

  beforeAll(async () => {
    t = await createReplicaApp({ context: { plainTypeorm: 'join' } });
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM replica_item'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('runs on the replica in a read-only transaction and on the primary in a read-write one', async () => {
    expect(await factory.atomic(() => where(t.dataSource.manager), { readOnly: true })).toEqual(
      onReplica,
    );
    expect(await factory.atomic(() => where(t.dataSource.manager))).toEqual(onPrimary);
  });

  it("reads its own unit's writes on the primary, where plain TypeORM would read the replica", async () => {
    const seen = await factory.runInNewContext(async () => {
      const items = t.dataSource.getRepository(ReplicaItem);
      await items.insert({ text: 'mine' });
      return items.countBy({ text: 'mine' });
    });
    expect(seen).toBe(1);
    expect(await countOnPrimary(t.dataSource, 'mine')).toBe(1);
  });

  it('refuses a plain write in a read-only transaction on the replica, sending nothing', async () => {
    await expect(
      factory.atomic(() => t.dataSource.getRepository(ReplicaItem).insert({ text: 'no' }), {
        readOnly: true,
      }),
    ).rejects.toBeInstanceOf(ReplicaWriteError);
    expect(await countOnPrimary(t.dataSource, 'no')).toBe(0);
  });
});
