import { SessionContext, SessionFactory } from '../../src/index.js';
import { countOnPrimary, createReplicaApp, pair, portOf, type ReplicaApp } from './replica-app.js';
import { ReplicaItem, type Where, where } from './replica-item.js';

describe('Read replicas: routing (PostgreSQL streaming replica)', () => {
  let t: ReplicaApp;
  let factory: SessionFactory;
  let context: SessionContext;
  const { primary: primaryUrl, replica: replicaUrl } = pair();
  const onPrimary: Where = { replica: false, port: portOf(primaryUrl) };
  const onReplica: Where = { replica: true, port: portOf(replicaUrl) };

  beforeAll(async () => {
    t = await createReplicaApp();
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM replica_item'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('the pair is a primary and its hot standby on two ports', () => {
    expect(onPrimary.port).not.toBe(onReplica.port);
  });

  it('a read-only sessionFactory.atomic() and @Transactional(REQUIRES_NEW) run on the replica', async () => {
    const read = await t.http().get('/read/x').expect(200);
    expect(read.body).toMatchObject(onReplica);
    const report = await t.http().get('/report/x').expect(200);
    expect(report.body).toMatchObject(onReplica);
  });

  it('everything else runs on the primary: read-write, replica: false, SERIALIZABLE, open()', async () => {
    expect(await factory.atomic(where)).toEqual(onPrimary);
    expect((await t.http().get('/read-primary/x').expect(200)).body).toMatchObject(onPrimary);
    const serializable = await factory.atomic(where, {
      readOnly: true,
      isolationLevel: 'SERIALIZABLE',
    });
    expect(serializable).toEqual(onPrimary);
    expect(
      await factory.atomic(where, { readOnly: true, isolationLevel: 'REPEATABLE READ' }),
    ).toEqual(onReplica);
    const session = factory.open({ readOnly: true });
    expect(await where(session.manager)).toEqual(onReplica);
    await session.close();
    const writer = factory.open();
    expect(await where(writer.manager)).toEqual(onPrimary);
    await writer.close();
  });

  it('the replica transaction is READ ONLY and sees what was replicated', async () => {
    await t.dataSource.getRepository(ReplicaItem).insert({ text: 'replicated' });
    await t.replayed();
    const seen = await factory.atomic(
      async (manager) => {
        const rows: Array<{ mode: string }> = await manager.query(
          'SELECT current_setting($1) AS mode',
          ['transaction_read_only'],
        );
        return {
          mode: rows[0]!.mode,
          count: await manager.countBy(ReplicaItem, { text: 'replicated' }),
        };
      },
      { readOnly: true },
    );
    expect(seen).toEqual({ mode: 'on', count: 1 });
  });

  it('read-your-writes: after the request wrote, its read-only transactions stay on the primary and see the row', async () => {
    const { body } = await t.http().post('/write/mine').expect(201);
    expect(body.write).toEqual(onPrimary);
    expect(body.read).toEqual({ ...onPrimary, seen: 1 });
    expect(body.report).toEqual({ ...onPrimary, seen: 1 });
    // A REQUIRED read-only block joins the request's transaction, on the primary.
    expect(body.joined).toEqual(onPrimary);
    // The next request is a new unit of work: back to the replica.
    expect((await t.http().get('/read/mine').expect(200)).body).toMatchObject(onReplica);
  });

  it('a REQUIRES_NEW read-only block inside a read-write transaction that wrote stays on the primary', async () => {
    const { body } = await t.http().post('/write-then-report/inner').expect(201);
    expect(body.write).toEqual(onPrimary);
    // Its own transaction on the primary: it cannot see the outer one's uncommitted row.
    expect(body.report).toEqual({ ...onPrimary, seen: 0 });
    expect(await countOnPrimary(t.dataSource, 'inner')).toBe(1);
  });

  it('a unit that read on the replica first writes on the primary afterwards', async () => {
    const { body } = await t.http().post('/read-then-write/later').expect(201);
    expect(body.read).toEqual({ ...onReplica, seen: 0 });
    expect(body.write).toEqual(onPrimary);
  });

  it('a read-only atomic in runInNewContext() inside a unit that used the primary stays on the primary', async () => {
    const result = await factory.runInNewContext(async () => {
      const outer = await where(context.session());
      const inner = await factory.runInNewContext(() => factory.atomic(where, { readOnly: true }));
      return { outer, inner };
    });
    expect(result).toEqual({ outer: onPrimary, inner: onPrimary });
    // A fresh unit outside any other: the replica.
    expect(await factory.runInNewContext(() => factory.atomic(where, { readOnly: true }))).toEqual(
      onReplica,
    );
  });

  it('50 mixed requests at once: reads on the replica, writes on the primary, read-your-writes holds', async () => {
    const requests = Array.from({ length: 50 }, (_, i) =>
      i % 4 === 0
        ? t.http().post(`/write/w${i}`).expect(201)
        : t.http().get(`/read/r${i}`).expect(200),
    );
    const answers = await Promise.all(requests);
    let reads = 0;
    let writes = 0;
    answers.forEach(({ body }, i) => {
      if (i % 4 === 0) {
        writes++;
        expect(body.write).toEqual(onPrimary);
        expect(body.read).toEqual({ ...onPrimary, seen: 1 });
        expect(body.report).toEqual({ ...onPrimary, seen: 1 });
      } else {
        reads++;
        expect(body).toEqual({ ...onReplica, seen: 0 });
      }
    });
    expect({ reads, writes }).toEqual({ reads: 37, writes: 13 });
    expect(await t.dataSource.getRepository(ReplicaItem).count()).toBe(13);
  });
});
