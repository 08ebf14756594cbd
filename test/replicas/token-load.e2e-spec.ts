import { SessionContext, SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createReplicaApp, pauseReplay, type ReplicaApp, resumeReplay } from './replica-app.js';
import { ReplicaItem } from './replica-item.js';
import { TokenController } from './token-app.js';

const HEADER = 'x-consistency-token';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Attack: many clients writing and reading with their tokens while the standby's replay stops and starts. */
describe('Read replicas: consistency tokens under load', () => {
  let t: ReplicaApp;
  beforeAll(async () => {
    t = await createReplicaApp({
      context: { consistency: { header: HEADER } },
      controllers: [TokenController],
      poolSize: 6,
    });
  });
  afterEach(() => resumeReplay());
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('every read of a client that carries its token sees all its writes; without tokens reads go stale', async () => {
    const clients = 8;
    const rounds = 12;
    let stop = false;
    // Replay paused and resumed every 60–120 ms for the whole run.
    const toggling = (async () => {
      for (let paused = false; !stop; paused = !paused) {
        await (paused ? resumeReplay() : pauseReplay());
        await sleep(60 + Math.random() * 60);
      }
      await resumeReplay();
    })();
    const where = { primary: 0, replica: 0 };
    const failures: string[] = [];
    const client = async (id: number) => {
      let token: string | undefined;
      for (let round = 1; round <= rounds; round++) {
        const write = t.http().post(`/tok/write/c${id}`);
        if (token) write.set(HEADER, token);
        const written = await write.expect(201);
        token = (written.headers[HEADER] as string | undefined) ?? token;
        await sleep(Math.random() * 30);
        const read = await t.http().get(`/tok/read/c${id}`).set(HEADER, token!).expect(200);
        where[read.body.replica ? 'replica' : 'primary']++;
        if (read.body.seen !== round) {
          failures.push(
            `client ${id} round ${round}: saw ${read.body.seen} on replica=${read.body.replica}`,
          );
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: clients }, (_, id) => client(id)));
    } finally {
      stop = true;
      await toggling;
    }
    expect(failures).toEqual([]);
    expect(where.primary + where.replica).toBe(clients * rounds);
    const rows = await t.dataSource.query(
      "SELECT count(*)::int AS n FROM replica_item WHERE text LIKE 'c%'",
    );
    expect(rows[0].n).toBe(clients * rounds);
    // The control: the same read without a token, replay paused after a write, is stale.
    await pauseReplay();
    await t.http().post('/tok/write/c0').expect(201);
    const stale = await t.http().get('/tok/read/c0').expect(200);
    expect(stale.body).toMatchObject({ replica: true, seen: rounds });
  });

  it('under the testing kit everything stays on the test connection: no token, reads see the test rows', async () => {
    const tx = await TestTransaction.start(t.app);
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    try {
      const token = await factory.runInNewContext(async () => {
        await context.session().insert(ReplicaItem, { text: 'kit' });
        await context.commit();
        return context.consistencyToken();
      });
      expect(token).toBeUndefined(); // nothing was committed: the test rolls it all back
      // A token far ahead cannot send a read of the test anywhere but its connection.
      const read = await factory.runInNewContext(
        () =>
          factory.atomic((manager) => manager.countBy(ReplicaItem, { text: 'kit' }), {
            readOnly: true,
          }),
        { consistencyToken: 'default=FFFF/0' },
      );
      expect(read).toBe(1);
    } finally {
      await tx.rollback();
    }
  });
});
