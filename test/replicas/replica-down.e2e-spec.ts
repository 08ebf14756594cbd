import type { LoggerService } from '@nestjs/common';
import { ReplicaUnavailableError, SessionFactory } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { createReplicaApp, pair, portOf, type ReplicaApp } from './replica-app.js';
import { where } from './replica-item.js';
import { TcpProxy } from './tcp-proxy.js';

/** Keeps the library's warnings and logs. */
class Lines implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown): void {
    this.lines.push(`log ${String(message)}`);
  }
  warn(message: unknown): void {
    this.lines.push(`warn ${String(message)}`);
  }
  error(message: unknown): void {
    this.lines.push(`error ${String(message)}`);
  }
  /** The lines about replicas. */
  get replicas(): string[] {
    return this.lines.filter((line) => line.includes('replica of data source'));
  }
}

/** The pg pool of the app's one replica. */
function replicaPool(t: ReplicaApp): { totalCount: number } {
  return (t.dataSource.driver as unknown as { slaves: Array<{ totalCount: number }> }).slaves[0]!;
}

describe('Read replicas: a replica that is down', () => {
  const { primary, replica } = pair();
  const onPrimary = { replica: false, port: portOf(primary) };

  describe("replicaDown: 'primary' (the default)", () => {
    let t: ReplicaApp;
    let proxy: TcpProxy;
    const logger = new Lines();
    let factory: SessionFactory;

    beforeAll(async () => {
      proxy = await TcpProxy.start(portOf(replica));
      const url = new URL(replica);
      url.port = String(proxy.port);
      t = await createReplicaApp({ slaves: [url.toString()], logger });
      factory = t.app.get(SessionFactory);
    });
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await t.close();
      await proxy.down();
    });

    it('falls back to the primary during the outage, logs it once, and returns to the replica after', async () => {
      const read = () => factory.atomic(where, { readOnly: true });
      expect((await read()).replica).toBe(true); // an idle replica connection now sits in the pool
      await proxy.down();
      // pg-pool drops the idle connection the outage broke (one in use would fail its transaction
      // with ConnectionLostError, as on the primary).
      await eventually(() => replicaPool(t).totalCount === 0);
      const during = await Promise.all([read(), read(), read()]);
      expect(during).toEqual([onPrimary, onPrimary, onPrimary]);
      expect(await read()).toEqual(onPrimary);
      expect(logger.replicas).toHaveLength(1);
      expect(logger.replicas[0]).toMatch(
        /^warn \[unit \d+\] No replica of data source 'default' accepts connections .*run on the primary/,
      );
      await proxy.up();
      // Replicas are tried again a second after the last failure.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(await read()).toEqual({ replica: true, port: portOf(replica) });
      expect(logger.replicas).toHaveLength(2);
      expect(logger.replicas[1]).toMatch(
        /^log \[unit \d+\] A replica of data source 'default' accepts connections again\.$/,
      );
    });
  });

  describe("replicaDown: 'fail'", () => {
    let t: ReplicaApp;
    let factory: SessionFactory;

    let proxy: TcpProxy;

    beforeAll(async () => {
      // TypeORM connects to every replica at startup: the replica goes down after that.
      proxy = await TcpProxy.start(portOf(replica));
      const url = new URL(replica);
      url.port = String(proxy.port);
      t = await createReplicaApp({ slaves: [url.toString()], context: { replicaDown: 'fail' } });
      factory = t.app.get(SessionFactory);
      await proxy.down();
      await eventually(() => replicaPool(t).totalCount === 0);
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('a read-only transaction fails with ReplicaUnavailableError; replica: false and writes still work', async () => {
      const failure = await factory
        .atomic(where, { readOnly: true })
        .catch((caught: unknown) => caught);
      expect(failure).toBeInstanceOf(ReplicaUnavailableError);
      expect((failure as Error).message).toContain("replicaDown is 'fail'");
      expect(((failure as Error).cause as { code: string }).code).toBe('ECONNREFUSED');
      await t.http().get('/read/x').expect(500);
      expect(await factory.atomic(where, { readOnly: true, replica: false })).toEqual(onPrimary);
      expect(await factory.atomic(where)).toEqual(onPrimary);
    });
  });
});
