import { tracingChannel } from 'node:diagnostics_channel';
import { CONNECTION_CHANNEL, type ConnectionMessage, SessionFactory } from '../../src/index.js';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { eventually } from '../support/create-app.js';
import { metering, tracing } from '../otel-review/otel-sdk.js';
import { createReplicaApp, pair, portOf, type ReplicaApp } from './replica-app.js';
import { where } from './replica-item.js';
import { TcpProxy } from './tcp-proxy.js';

const { exporter } = tracing();

/** The connection messages published while `work` runs, as they were at `asyncEnd`. */
async function takes(work: () => Promise<unknown>): Promise<ConnectionMessage[]> {
  const seen: ConnectionMessage[] = [];
  const handlers = {
    start: () => undefined,
    end: () => undefined,
    asyncStart: () => undefined,
    error: () => undefined,
    asyncEnd: (message: ConnectionMessage) => void seen.push({ ...message }),
  };
  tracingChannel(CONNECTION_CHANNEL).subscribe(handlers as never);
  try {
    await work();
  } finally {
    tracingChannel(CONNECTION_CHANNEL).unsubscribe(handlers as never);
  }
  return seen;
}

/** The pg pool of the app's one replica. */
function replicaPool(t: ReplicaApp): { totalCount: number } {
  return (t.dataSource.driver as unknown as { slaves: Array<{ totalCount: number }> }).slaves[0]!;
}

describe('Read replicas: the connection channel and OpenTelemetry say where a session ran', () => {
  const { replica } = pair();
  let t: ReplicaApp;
  let proxy: TcpProxy;
  let factory: SessionFactory;

  beforeAll(async () => {
    proxy = await TcpProxy.start(portOf(replica));
    const url = new URL(replica);
    url.port = String(proxy.port);
    t = await createReplicaApp({ slaves: [url.toString()] });
    factory = t.app.get(SessionFactory);
  });
  afterEach(() => t.expectClean());
  afterAll(async () => {
    await t.close();
    await proxy.down();
  });

  it('a read-only transaction: asked for a replica and got one; a read-write one: neither', async () => {
    const [read] = await takes(() => factory.atomic(where, { readOnly: true }));
    expect(read).toMatchObject({ replica: true, onReplica: true, timedOut: false });
    expect((await factory.atomic(where, { readOnly: true })).replica).toBe(true);
    const [write] = await takes(() => factory.atomic(where));
    expect(write).toMatchObject({ replica: false, onReplica: false, timedOut: false });
  });

  it('a replica that is down: the fallback to the primary is a connection message, a span attribute and a counted fallback', async () => {
    const { reader, provider } = metering();
    const instrumentation = new TypeOrmContextInstrumentation({ enabled: false });
    instrumentation.setMeterProvider(provider);
    instrumentation.enable();
    try {
      await proxy.down();
      await eventually(() => replicaPool(t).totalCount === 0);
      exporter.reset();
      const [fallback] = await takes(async () => {
        const ran = await factory.atomic(where, { readOnly: true });
        expect(ran.replica).toBe(false); // the primary answered
      });
      expect(fallback).toMatchObject({ replica: true, onReplica: false, timedOut: false });
      const span = exporter.getFinishedSpans().find((s) => s.name === 'connection.acquire default');
      expect(span?.attributes).toMatchObject({
        'nestjs_typeorm_context.replica': true,
        'nestjs_typeorm_context.on_replica': false,
        'db.client.connection.pool.name': 'default',
      });
      expect(await reader.sum('nestjs_typeorm_context.replica_fallbacks')).toBe(1);
      // A pool metric per pool: the primary's and the replica's.
      const pools = (await reader.points('db.client.connection.max')).map(
        (point) => point.attributes['db.client.connection.pool.name'],
      );
      expect(pools.sort()).toEqual(['default', 'default:replica']);
    } finally {
      instrumentation.disable();
      await proxy.up();
    }
  });
});
