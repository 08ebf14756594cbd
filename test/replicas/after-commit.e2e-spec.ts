import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createReplicaApp, pair, portOf, type ReplicaApp } from './replica-app.js';
import { ReplicaItem, where } from './replica-item.js';

/** Where a read ran, and whether it saw the row `text`. */
async function seen(manager: EntityManager, text: string) {
  return { ...(await where(manager)), seen: await manager.countBy(ReplicaItem, { text }) };
}

describe('Read replicas: read-your-writes in the callbacks of a unit', () => {
  let t: ReplicaApp;
  let factory: SessionFactory;
  let context: SessionContext;
  const { primary, replica } = pair();
  const onPrimary = { replica: false, port: portOf(primary) };
  const onReplica = { replica: true, port: portOf(replica) };

  beforeAll(async () => {
    t = await createReplicaApp();
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM replica_item'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  /** The read-only reads a callback may run, each of its own kind. */
  const reads = {
    atomic: (text: string) => factory.atomic((manager) => seen(manager, text), { readOnly: true }),
    inNewContext: (text: string) =>
      factory.runInNewContext(() =>
        factory.atomic((manager) => seen(manager, text), { readOnly: true }),
      ),
    open: async (text: string) => {
      const session = factory.open({ readOnly: true });
      try {
        return await seen(session.manager, text);
      } finally {
        await session.close();
      }
    },
  };

  it('after a unit wrote and committed, read-only reads in afterCommit and afterCompletion run on the primary and see the row', async () => {
    const results: Record<string, unknown> = {};
    await factory.runInNewContext(async () => {
      await context.session().insert(ReplicaItem, { text: 'written' });
      context.afterCommit(async () => {
        for (const [kind, read] of Object.entries(reads)) results[kind] = await read('written');
      });
      context.afterCompletion(async () => {
        results.afterCompletion = await reads.atomic('written');
      });
    });
    const expected = { ...onPrimary, seen: 1 };
    expect(results).toEqual({
      atomic: expected,
      inNewContext: expected,
      open: expected,
      afterCompletion: expected,
    });
  });

  it('after sessionContext.commit() in the middle of a request, its afterCommit read runs on the primary', async () => {
    const result = await factory.runInNewContext(async () => {
      let read: unknown;
      await context.session().insert(ReplicaItem, { text: 'mid' });
      context.afterCommit(async () => {
        read = await reads.atomic('mid');
      });
      await context.commit();
      return read;
    });
    expect(result).toEqual({ ...onPrimary, seen: 1 });
  });

  it('a unit that only read on the replica keeps its callbacks on the replica', async () => {
    let read: unknown;
    await factory.runInNewContext(async () => {
      await reads.atomic('nothing');
      context.afterCompletion(async () => {
        read = await reads.atomic('nothing');
      });
    });
    expect(read).toEqual({ ...onReplica, seen: 0 });
  });
});
