import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createReplicaApp, pair, type ReplicaApp, runOn } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';

/**
 * A consistency token is `pg_current_wal_insert_lsn()` read right after the COMMIT. When the
 * commit record ends exactly at the end of a WAL page (8 kB), PostgreSQL's insert position points
 * past the next page's header (XLogBytePosToRecPtr), while a standby that replayed the commit
 * reports the page boundary itself (its EndRecPtr). The token then names a position no standby
 * reaches until the primary writes something else: a token read waits, then goes to the primary
 * or, with `behind: 'fail'`, fails, although the replica has the row.
 */

const PAGE = 8192n;
const SEGMENT = 16n * 1024n * 1024n;

const lsnOf = (text: string): bigint => {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
};

async function insertLsn(manager: EntityManager): Promise<bigint> {
  const rows: Array<{ lsn: string }> = await manager.query(
    'SELECT pg_current_wal_insert_lsn()::text AS lsn',
  );
  return lsnOf(rows[0]!.lsn);
}

async function emit(manager: EntityManager, size: number): Promise<void> {
  await manager.query("SELECT pg_logical_emit_message(true, 'review22', repeat('x', $1::int))", [
    size,
  ]);
}

const samePage = (a: bigint, b: bigint) => a / PAGE === b / PAGE && b % PAGE !== 0n;

describe('Replica review: a token of a commit that ends at a WAL page boundary', () => {
  let replica: ReplicaApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    replica = await createReplicaApp({
      context: { consistency: { wait: 1500, behind: 'fail', refresh: 10 } },
    });
    factory = replica.app.get(SessionFactory);
    context = replica.app.get(SessionContext);
  });
  afterAll(() => replica.close());

  /** Runs `write` in a unit inside an outer one, and returns the outer unit's token after. */
  async function commitIn(write: (manager: EntityManager) => Promise<void>): Promise<string> {
    let token: string | undefined;
    await factory.runInNewContext(async () => {
      await factory.runInNewContext(() => write(context.session()));
      token = context.consistencyToken();
    });
    return token!;
  }

  /** The sizes of a logical message record (for N0 bytes) and of a commit record, in LSN bytes. */
  async function measure(): Promise<{ message: bigint; commit: bigint }> {
    for (let attempt = 0; attempt < 20; attempt++) {
      let a = 0n;
      let b = 0n;
      const token = await commitIn(async (manager) => {
        await manager.insert(ReplicaItem, { text: 'probe' });
        a = await insertLsn(manager);
        await emit(manager, 300);
        b = await insertLsn(manager);
      });
      const end = lsnOf(token.split('=')[1]!);
      if (samePage(a, b) && samePage(b, end)) return { message: b - a, commit: end - b };
    }
    throw new Error('no measure');
  }

  it('the token names the boundary, not the next page header: a token read runs on the replica that replayed it', async () => {
    const sizes = await measure();
    let boundary = 0n;
    let token = '';
    for (let attempt = 0; attempt < 20 && boundary === 0n; attempt++) {
      let target = 0n;
      token = await commitIn(async (manager) => {
        await manager.insert(ReplicaItem, { text: 'boundary' });
        const at = await insertLsn(manager);
        target = (at / PAGE + 1n) * PAGE;
        let span = target - at - sizes.commit;
        if (span < sizes.message) {
          // the message crosses into the next page: that page's header counts too
          target += PAGE;
          span = target - at - sizes.commit - ((target - PAGE) % SEGMENT === 0n ? 40n : 24n);
        }
        await emit(manager, 300 + Number(span - sizes.message));
      });
      const position = lsnOf(token.split('=')[1]!);
      const header = target % SEGMENT === 0n ? 40n : 24n;
      // The commit ended the page: the insert position was the next page's header further.
      if (position === target || position - target === header) boundary = target;
    }
    expect(boundary).not.toBe(0n);
    const tokenPosition = lsnOf(token.split('=')[1]!);

    // The standby replays the commit: the row is there, and its replay position is the boundary.
    let replayed: bigint;
    const deadline = Date.now() + 5000;
    for (;;) {
      const rows = await runOn(
        pair().replica,
        "SELECT pg_last_wal_replay_lsn()::text AS lsn, (SELECT count(*)::int FROM replica_item WHERE text = 'boundary') AS n",
      );
      replayed = lsnOf(rows[0]!.lsn as string);
      if ((rows[0]!.n as number) > 0 && replayed >= boundary) break;
      if (Date.now() > deadline) throw new Error('not replayed');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const primary = await runOn(pair().primary, 'SELECT pg_current_wal_flush_lsn()::text AS lsn');
    // Everything the primary flushed is replayed, the row is on the replica...
    expect(replayed).toBe(lsnOf(primary[0]!.lsn as string));
    expect(replayed).toBe(boundary);
    // ...and the token names that boundary, not the header past it (which no standby reaches on
    // an idle primary).
    expect(tokenPosition).toBe(replayed);

    // A read carrying the token runs on the replica (it has the row).
    const read = factory.runInNewContext(
      () =>
        factory.atomic(
          async (manager) => {
            const rows: Array<{ replica: boolean; n: number }> = await manager.query(
              "SELECT pg_is_in_recovery() AS replica, (SELECT count(*)::int FROM replica_item WHERE text = 'boundary') AS n",
            );
            return rows[0]!;
          },
          { readOnly: true },
        ),
      { consistencyToken: token },
    );
    await expect(read).resolves.toEqual({ replica: true, n: 1 });
  });
});
