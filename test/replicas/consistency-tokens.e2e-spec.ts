import {
  InvalidOptionError,
  NoSessionContextError,
  ReplicaUnavailableError,
  SessionContext,
  SessionFactory,
} from '../../src/index.js';
import {
  captureLogs,
  createReplicaApp,
  pair,
  pauseReplay,
  portOf,
  type ReplicaApp,
  resumeReplay,
  runOn,
} from './replica-app.js';
import { ReplicaItem, where } from './replica-item.js';
import { TokenController } from './token-app.js';
import { eventually } from '../support/create-app.js';

const HEADER = 'x-consistency-token';
const TOKEN = /^default=[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;

/** Whether the primary's WAL position `token` names is at most the primary's insert position. */
async function tokenOnPrimary(token: string): Promise<boolean> {
  const lsn = token.split('=')[1]!;
  const rows = await runOn(
    pair().primary,
    `SELECT '${lsn}'::pg_lsn <= pg_current_wal_insert_lsn() AS ok`,
  );
  return rows[0]!.ok === true;
}

/** Whether the standby replayed past the position `token` names. */
async function replayedPast(token: string): Promise<boolean> {
  const lsn = token.split('=')[1]!;
  const rows = await runOn(
    pair().replica,
    `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`,
  );
  return rows[0]!.ok === true;
}

describe('Read replicas: consistency tokens (read-your-writes across requests)', () => {
  const replicaPort = portOf(pair().replica);
  const primaryPort = portOf(pair().primary);
  afterEach(() => resumeReplay());

  describe('in a header', () => {
    let t: ReplicaApp;
    const logs = captureLogs();
    beforeAll(async () => {
      t = await createReplicaApp({
        context: { consistency: { header: HEADER } },
        controllers: [TokenController],
        logger: logs,
      });
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM replica_item');
      await t.replayed();
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('a write sends its token; with it a read never sees older data while replay is paused, without it it does', async () => {
      await pauseReplay();
      const write = await t.http().post('/tok/write/a').expect(201);
      const token = write.headers[HEADER] as string;
      expect(token).toMatch(TOKEN);
      expect(await tokenOnPrimary(token)).toBe(true);
      expect(await replayedPast(token)).toBe(false);
      // With the token: the replica has not replayed it, so the primary, which has the row.
      const carried = await t.http().get('/tok/read/a').set(HEADER, token).expect(200);
      expect(carried.body).toEqual({ replica: false, port: primaryPort, seen: 1 });
      // Without it: the replica, stale (documented).
      const bare = await t.http().get('/tok/read/a').expect(200);
      expect(bare.body).toEqual({ replica: true, port: replicaPort, seen: 0 });
      // A read sends no token back (nothing committed moved it).
      expect(carried.headers[HEADER]).toBeUndefined();
      await resumeReplay();
      await eventually(() => replayedPast(token));
      // Replayed: the replica again (once what it said is older than consistency.refresh).
      await eventually(async () => {
        const again = await t.http().get('/tok/read/a').set(HEADER, token).expect(200);
        return again.body.replica === true && again.body.seen === 1;
      });
      expect(logs.lines.some((line) => line.includes('ran on the primary'))).toBe(true);
    });

    it('units that write nothing send no token: a read-only request, a read-write one that only read', async () => {
      const read = await t.http().get('/tok/read/x').expect(200);
      expect(read.headers[HEADER]).toBeUndefined();
      const readWrite = await t.http().post('/tok/read-write/x').expect(201);
      expect(readWrite.body.replica).toBe(false);
      expect(readWrite.headers[HEADER]).toBeUndefined();
    });

    it('a runInNewContext() that commits in the request moves its token; so does a commit before a failure', async () => {
      await pauseReplay();
      const child = await t.http().post('/tok/child/c').expect(201);
      const token = child.headers[HEADER] as string;
      expect(token).toMatch(TOKEN);
      const read = await t.http().get('/tok/read/c').set(HEADER, token).expect(200);
      expect(read.body).toMatchObject({ replica: false, seen: 1 });
      const failed = await t.http().post('/tok/commit-then-fail/f').expect(500);
      const afterFailure = failed.headers[HEADER] as string;
      expect(afterFailure).toMatch(TOKEN);
      const seen = await t.http().get('/tok/read/f').set(HEADER, afterFailure).expect(200);
      expect(seen.body).toMatchObject({ replica: false, seen: 1 });
    });

    it('a later token replaces an earlier one: the response carries the furthest position', async () => {
      const first = (await t.http().post('/tok/write/1').expect(201)).headers[HEADER] as string;
      const second = await t.http().post('/tok/token/2').set(HEADER, first).expect(201);
      expect(second.body.before).toBe(first);
      expect(second.body.after).toMatch(TOKEN);
      expect(second.body.after).not.toBe(first);
      expect(second.headers[HEADER]).toBe(second.body.after);
    });

    it('a header that is not a token is ignored: the read runs on a replica', async () => {
      for (const junk of ['junk', 'default=zz/1', 'default=1/2&', '=1/2', '%E0%A4%A=1/2']) {
        const read = await t.http().get('/tok/read/j').set(HEADER, junk).expect(200);
        expect(read.body.replica).toBe(true);
      }
    });

    it('a token of a data source the app does not have is ignored; one far ahead sends reads to the primary', async () => {
      const other = await t.http().get('/tok/read/o').set(HEADER, 'reports=FFFF/0').expect(200);
      expect(other.body.replica).toBe(true);
      const ahead = await t.http().get('/tok/read/o').set(HEADER, 'default=FFFF/0').expect(200);
      expect(ahead.body.replica).toBe(false);
    });
  });

  describe('in a cookie', () => {
    let t: ReplicaApp;
    beforeAll(async () => {
      t = await createReplicaApp({
        context: { consistency: { cookie: 'ntc_token' } },
        controllers: [TokenController],
      });
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('is set by a write and honoured when sent back', async () => {
      await pauseReplay();
      const write = await t.http().post('/tok/write/k').expect(201);
      const cookies = write.headers['set-cookie'] as unknown as string[];
      expect(cookies).toHaveLength(1);
      expect(cookies[0]).toMatch(
        /^ntc_token=default=[0-9A-F]+\/[0-9A-F]+; Path=\/; HttpOnly; SameSite=Lax$/,
      );
      const value = cookies[0]!.split(';')[0]!;
      const read = await t
        .http()
        .get('/tok/read/k')
        .set('Cookie', `other=1; ${value}; last=2`)
        .expect(200);
      expect(read.body).toMatchObject({ replica: false, seen: 1 });
      expect(read.headers['set-cookie']).toBeUndefined();
    });
  });

  describe('waiting for a replica, or failing', () => {
    let t: ReplicaApp;
    let factory: SessionFactory;
    let context: SessionContext;
    afterEach(() => t.expectClean());
    afterEach(() => t.close());

    it('consistency.wait: the read waits for the replica to replay the token, then runs there', async () => {
      t = await createReplicaApp({
        context: { consistency: { header: HEADER, wait: 5000 } },
        controllers: [TokenController],
      });
      await pauseReplay();
      const token = (await t.http().post('/tok/write/w').expect(201)).headers[HEADER] as string;
      const started = Date.now();
      setTimeout(() => void resumeReplay(), 300);
      const read = await t.http().get('/tok/read/w').set(HEADER, token).expect(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(read.body).toMatchObject({ replica: true, seen: 1 });
    });

    it("consistency.behind: 'fail': ReplicaUnavailableError naming the token's position", async () => {
      t = await createReplicaApp({ context: { consistency: { behind: 'fail', wait: 50 } } });
      factory = t.app.get(SessionFactory);
      context = t.app.get(SessionContext);
      await pauseReplay();
      const token = await factory.runInNewContext(async () => {
        await context.session().insert(ReplicaItem, { text: 'b' });
        await context.commit();
        return context.consistencyToken();
      });
      expect(token).toMatch(TOKEN);
      const read = factory.runInNewContext(
        () =>
          factory.atomic((manager) => manager.countBy(ReplicaItem, { text: 'b' }), {
            readOnly: true,
          }),
        { consistencyToken: token },
      );
      await expect(read).rejects.toThrow(ReplicaUnavailableError);
      await expect(read).rejects.toThrow(`up to ${token!.split('=')[1]} within 50 ms`);
    });
  });

  it('a primary that cannot tell its WAL position (a role denied the function): one warning, plain commits, no token', async () => {
    const { primary, replica } = pair();
    await runOn(
      primary,
      "DROP ROLE IF EXISTS ntc_tokenless; CREATE ROLE ntc_tokenless LOGIN PASSWORD 'tokenless'; " +
        'GRANT ALL ON replica_item TO ntc_tokenless; GRANT ALL ON SEQUENCE replica_item_id_seq TO ntc_tokenless; ' +
        'REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC',
    );
    const as = (url: string) => {
      const parsed = new URL(url);
      parsed.username = 'ntc_tokenless';
      parsed.password = 'tokenless';
      return parsed.toString();
    };
    const logs = captureLogs();
    const t = await createReplicaApp({
      primary: as(primary),
      slaves: [as(replica)],
      context: { consistency: { header: HEADER } },
      controllers: [TokenController],
      logger: logs,
    });
    try {
      const write = await t.http().post('/tok/write/denied').expect(201);
      expect(write.headers[HEADER]).toBeUndefined();
      await t.http().post('/tok/write/denied').expect(201);
      // Asked once, at the first transaction on the primary: one warning.
      expect(
        logs.lines.filter((line) => line.includes('cannot tell its WAL position')),
      ).toHaveLength(1);
      const rows = await runOn(
        primary,
        "SELECT count(*)::int AS n FROM replica_item WHERE text = 'denied'",
      );
      expect(rows[0]!.n).toBe(2);
      await t.expectClean();
    } finally {
      await t.close();
      await runOn(
        primary,
        'GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn() TO PUBLIC; ' +
          'REVOKE ALL ON replica_item FROM ntc_tokenless; REVOKE ALL ON SEQUENCE replica_item_id_seq FROM ntc_tokenless; ' +
          'DROP ROLE ntc_tokenless',
      );
    }
  });

  describe('the API: consistencyToken(), consistentWith(), runInNewContext({ consistencyToken })', () => {
    let t: ReplicaApp;
    let other: ReplicaApp;
    let factory: SessionFactory;
    let context: SessionContext;
    beforeAll(async () => {
      t = await createReplicaApp();
      other = await createReplicaApp();
      factory = t.app.get(SessionFactory);
      context = t.app.get(SessionContext);
    });
    afterEach(async () => {
      await t.expectClean();
      await other.expectClean();
    });
    afterAll(async () => {
      await t.close();
      await other.close();
    });

    const written = (text: string) =>
      factory.runInNewContext(async () => {
        await context.session().insert(ReplicaItem, { text });
        await context.commit();
        return context.consistencyToken()!;
      });

    it('a token read before any commit is undefined; after a read-only unit too', async () => {
      expect(await factory.runInNewContext(() => context.consistencyToken())).toBeUndefined();
      const readOnly = await factory.runInNewContext(async () => {
        await factory.atomic(where, { readOnly: true });
        await context.session().query('SELECT 1');
        return context.consistencyToken();
      });
      expect(readOnly).toBeUndefined();
    });

    it('another app instance honours the token (it is the database position, not the process)', async () => {
      await pauseReplay();
      const token = await written('i');
      const otherFactory = other.app.get(SessionFactory);
      const otherContext = other.app.get(SessionContext);
      const read = () =>
        otherFactory.atomic(
          async (manager) => ({
            ...(await where(manager)),
            seen: await manager.countBy(ReplicaItem, { text: 'i' }),
          }),
          { readOnly: true },
        );
      expect(await otherFactory.runInNewContext(read, { consistencyToken: token })).toMatchObject({
        replica: false,
        seen: 1,
      });
      // consistentWith(): a message handler applies the token its producer sent.
      expect(
        await otherFactory.runInNewContext(async () => {
          otherContext.consistentWith(token);
          return read();
        }),
      ).toMatchObject({ replica: false, seen: 1 });
      expect(await otherFactory.runInNewContext(read)).toMatchObject({ replica: true, seen: 0 });
    });

    it('a unit opened inside a unit that carries a token honours it; a REQUIRES_NEW block too', async () => {
      await pauseReplay();
      const token = await written('n');
      const inner = await factory.runInNewContext(
        () => factory.runInNewContext(() => factory.atomic(where, { readOnly: true })),
        { consistencyToken: token },
      );
      expect(inner.replica).toBe(false);
    });

    it('bad input: a string that is not a token, outside any unit, unknown options', async () => {
      expect(() => context.consistencyToken()).toThrow(NoSessionContextError);
      expect(() => context.consistentWith('default=1/1')).toThrow(NoSessionContextError);
      await factory.runInNewContext(() => {
        expect(() => context.consistentWith('nonsense')).toThrow(InvalidOptionError);
        expect(() => context.consistentWith('nonsense')).toThrow(/is not a consistency token/);
        expect(() => context.consistentWith(undefined)).not.toThrow();
      });
      await expect(factory.runInNewContext(() => 1, { consistencyToken: 'x' })).rejects.toThrow(
        InvalidOptionError,
      );
      await expect(
        factory.runInNewContext(() => 1, { consistencytoken: 'x' } as never),
      ).rejects.toThrow(/consistencytoken/);
    });
  });
});
