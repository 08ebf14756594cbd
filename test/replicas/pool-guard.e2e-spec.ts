import type { LoggerService } from '@nestjs/common';
import { eventually } from '../support/create-app.js';
import { checkedOutBoth, createReplicaApp, type ReplicaApp } from './replica-app.js';
import { ReplicaItem } from './replica-item.js';

/** Keeps the library's warnings. */
class Warnings implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.lines.push(String(message));
  }
}

interface PgClient {
  emit(event: 'error', error: Error): boolean;
}
interface PgPool {
  connect(
    callback: (error: Error | undefined, client: PgClient, release: () => void) => void,
  ): void;
}

describe('Read replicas: guardPool guards the replicas’ pools too', () => {
  let t: ReplicaApp;
  const logger = new Warnings();
  /** What emitting the error threw: an `'error'` nobody listens to crashes the process. */
  const unhandled: unknown[] = [];
  let broken = 0;

  beforeAll(async () => {
    t = await createReplicaApp({ context: { guardPool: true }, logger });
    // The replica's pool hands a connection out, and the driver reports it broken right then,
    // before TypeORM's runner attached its own listener (a backend killed as it became ready).
    const pool = (t.dataSource.driver as unknown as { slaves: PgPool[] }).slaves[0]!;
    const connect = pool.connect.bind(pool);
    pool.connect = (callback) =>
      connect((error, client, release) => {
        callback(error, client, release);
        if (error || broken > 0) return;
        broken++;
        try {
          client.emit('error', new Error('Connection terminated unexpectedly'));
        } catch (thrown) {
          unhandled.push(thrown);
        }
      });
  });
  afterAll(() => t.close());

  it('a plain read outside any context (TypeORM sends it to a replica) survives, and the error is logged', async () => {
    // A repository read outside any context: TypeORM's own runner on a replica, not a session.
    const count = await t.dataSource.getRepository(ReplicaItem).count();
    expect(broken).toBe(1);
    expect(count).toBe(0);
    expect(unhandled).toEqual([]);
    expect(logger.lines).toContainEqual(
      expect.stringMatching(
        /^A connection of replica 1 of data source 'default' failed: Connection terminated unexpectedly/,
      ),
    );
    await eventually(() => checkedOutBoth(t.dataSource) === 0);
  });
});
