import { Args, Int, Resolver, Subscription } from '@nestjs/graphql';
import type { FormattedExecutionResult } from 'graphql';
import { createClient } from 'graphql-ws';
import type { EntityManager } from 'typeorm';
import WebSocket from 'ws';
import { graphqlWsUnits, SessionContext } from '../../src/index.js';
import { closeApp } from '../correctness/support-b.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { createGraphqlApp, type GraphqlApp, Probe, probe, rowsWithXmin } from './graphql-app.js';

/** A result as graphql-ws's client gives it. */
type Result = FormattedExecutionResult<Record<string, unknown>, unknown>;

/** A subscription whose source yields one event per tag; each event's `resolve` writes. */
@Resolver(() => Probe)
class EventsResolver {
  constructor(private readonly context: SessionContext) {}

  @Subscription(() => Probe, {
    // Runs per event, in the event's unit (bound to the resolver by Nest).
    async resolve(this: EventsResolver, payload: { tag: string }) {
      await this.context.session().insert(Example, { text: payload.tag });
      if (payload.tag === 'boom') throw new Error('refused boom');
      return { tag: payload.tag, txid: '', backend: '' };
    },
  })
  events(
    @Args('tags', { type: () => [String] }) tags: string[],
    @Args('waitMs', { type: () => Int, nullable: true }) waitMs?: number,
  ) {
    return (async function* () {
      for (const tag of tags) yield { tag };
      if (waitMs) await new Promise((resolve) => setTimeout(resolve, waitMs).unref());
    })();
  }
}

/** Refuses to commit a transaction that wrote a row 'refused'. */
async function refuseMarked(session: EntityManager): Promise<void> {
  const rows: Array<{ n: number | string }> = await session.query(
    "SELECT count(*) AS n FROM example WHERE text = 'refused'",
  );
  if (Number(rows[0]!.n) > 0) throw new Error('beforeCommit refused');
}

describe.each(engines)('GraphQL subscriptions over graphql-ws (apollo, $name)', (engine) => {
  let t: GraphqlApp;
  let url: string;

  beforeAll(async () => {
    t = await createGraphqlApp(engine, {
      driver: 'apollo',
      context: { beforeCommit: refuseMarked },
      providers: [EventsResolver],
      graphql: { subscriptions: { 'graphql-ws': graphqlWsUnits() } },
    });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as { port: number };
    url = `ws://127.0.0.1:${port}/graphql`;
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  /** Subscribes to `query` and returns every result it sent until it completed. */
  async function subscribe(query: string): Promise<Result[]> {
    const client = createClient({ url, webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
    try {
      const results: Result[] = [];
      for await (const result of client.iterate({ query })) results.push(result);
      return results;
    } finally {
      await client.dispose();
    }
  }

  it('each event is resolved in a unit of its own: committed, or rolled back alone', async () => {
    probe.engine = engine;
    const results = await subscribe(
      'subscription { events(tags: ["e1", "boom", "e2"]) { tag field { txid } } }',
    );
    expect(results).toHaveLength(3);
    const [first, failed, last] = results as [Result, Result, Result];
    expect(first.errors).toBeUndefined();
    expect(failed.errors?.[0]?.message).toBe('refused boom');
    expect(last.errors).toBeUndefined();
    const ids = [first, last].map(
      (result) => (result.data!.events as { field: { txid: string } }).field.txid,
    );
    expect(new Set(ids).size).toBe(2);
    expect(await t.texts()).toEqual(['e1', 'e1:field', 'e2', 'e2:field']);
    if (engine.name === 'postgres') {
      for (const row of await rowsWithXmin(t.dataSource)) {
        if (row.text.startsWith('e1')) expect(row.xmin).toBe(ids[0]);
        if (row.text.startsWith('e2')) expect(row.xmin).toBe(ids[1]);
      }
    }
  });

  it('an event whose COMMIT fails is sent as an error; the next events are not touched', async () => {
    const results = await subscribe(
      'subscription { events(tags: ["e1", "refused", "e2"]) { tag field { txid } } }',
    );
    expect(results.map((result) => result.errors?.[0]?.message)).toEqual([
      undefined,
      'Internal server error: the changes of this operation were not committed.',
      undefined,
    ]);
    expect(results[1]!.data).toBeNull();
    expect(await t.texts()).toEqual(['e1', 'e1:field', 'e2', 'e2:field']);
  });

  it('a client that leaves while the source waits leaves nothing open', async () => {
    const client = createClient({ url, webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
    const results: Result[] = [];
    const iterator = client.iterate({
      query: 'subscription { events(tags: ["e1"], waitMs: 60000) { tag field { txid } } }',
    });
    for await (const result of iterator) {
      results.push(result);
      break; // leaves while the source waits for its next event
    }
    await client.dispose();
    expect(results).toHaveLength(1);
    expect(await t.texts()).toEqual(['e1', 'e1:field']);
  });
});
