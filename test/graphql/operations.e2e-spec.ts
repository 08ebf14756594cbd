import { engines, type Engine } from '../support/engines.js';
import { closeApp } from '../correctness/support-b.js';
import {
  createGraphqlApp,
  type DriverName,
  type GraphqlApp,
  probe,
  rowsWithXmin,
} from './graphql-app.js';

/** Each driver, and the two with every field resolver behind the interceptor too. */
const SETUPS: Array<{ driver: DriverName; enhancers: 'none' | 'interceptors' }> = [
  { driver: 'apollo', enhancers: 'none' },
  { driver: 'apollo-fastify', enhancers: 'none' },
  { driver: 'mercurius', enhancers: 'none' },
  { driver: 'apollo', enhancers: 'interceptors' },
  { driver: 'mercurius', enhancers: 'interceptors' },
];
const cases = engines.flatMap((engine) => SETUPS.map((setup) => ({ engine, ...setup })));

/** Every txid found in a response body, wherever it sits. */
function txids(value: unknown): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(txids);
  return Object.entries(value).flatMap(([key, inner]) =>
    key === 'txid' ? [String(inner)] : txids(inner),
  );
}

describe.each(cases)(
  'GraphQL: one unit of work per operation ($driver, field enhancers: $enhancers, $engine.name)',
  ({
    engine,
    driver,
    enhancers,
  }: {
    engine: Engine;
    driver: DriverName;
    enhancers: 'none' | 'interceptors';
  }) => {
    let t: GraphqlApp;
    const options = { driver, enhancers: enhancers === 'none' ? [] : [enhancers] };

    beforeAll(async () => {
      t = await createGraphqlApp(engine, options);
    });
    beforeEach(async () => {
      probe.engine = engine;
      probe.batches = [];
      probe.late = [];
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    /** On PostgreSQL: every row was written by the transaction `txid`. */
    async function expectRowsWrittenBy(id: string) {
      if (engine.name !== 'postgres') return;
      for (const row of await rowsWithXmin(t.dataSource)) expect(row).toEqual({ ...row, xmin: id });
    }

    it('root fields, field resolvers and a DataLoader batch share one transaction, committed', async () => {
      const body = await t.gql(`{
      probes(tags: ["a", "b"]) { txid backend field { txid backend } batched { txid backend } }
      c: probe(tag: "c") { txid field { txid } }
    }`);
      expect(body.errors).toBeUndefined();
      const ids = txids(body.data);
      expect(ids).toHaveLength(8);
      expect(new Set(ids).size).toBe(1);
      const backends = JSON.stringify(body.data).match(/"backend":"[^"]*"/g)!;
      expect(new Set(backends).size).toBe(1);
      expect(probe.batches).toEqual([2]); // one batch for both parents
      expect(await t.texts()).toEqual([
        'a',
        'a:batch',
        'a:field',
        'b',
        'b:batch',
        'b:field',
        'c',
        'c:field',
      ]);
      await expectRowsWrittenBy(ids[0]!);
    });

    it('a failing field rolls back the whole operation, its sibling field included', async () => {
      const body = await t.gql(
        '{ ok: probe(tag: "ok") { txid field { txid } } bad: fail(tag: "bad") }',
      );
      expect(body.errors?.[0]?.message).toBe('refused bad');
      expect(body.data).toMatchObject({ ok: { txid: expect.any(String) }, bad: null });
      expect(await t.rows()).toBe(0);
    });

    it("two mutations: the second one's failure rolls back the first", async () => {
      const body = await t.gql(
        'mutation { one: write(tag: "m1") { txid } two: writeFail(tag: "m2") }',
      );
      expect(body.errors?.[0]?.message).toBe('refused m2');
      expect(await t.rows()).toBe(0);
    });

    it('two mutations that succeed commit in one transaction', async () => {
      const body = await t.gql(`mutation {
      one: write(tag: "m1") { txid field { txid } }
      two: write(tag: "m2") { txid batched { txid } }
    }`);
      expect(body.errors).toBeUndefined();
      const ids = txids(body.data);
      expect(new Set(ids).size).toBe(1);
      expect(await t.texts()).toEqual(['m1', 'm1:field', 'm2', 'm2:batch']);
      await expectRowsWrittenBy(ids[0]!);
    });

    it('a resolver still running when the response is ready cannot write afterwards', async () => {
      // failNow is non-null: its error nulls `data` at once, while `late` still sleeps.
      const body = await t.gql('{ late(tag: "late", ms: 300) { txid } failNow(tag: "now") }');
      expect(body.data).toBeNull();
      expect(body.errors?.map((error) => error.message)).toContain('refused now');
      await waitFor(() => probe.late.length === 1);
      expect(probe.late).toEqual(['SessionContextEndedError']);
      expect(await t.rows()).toBe(0);
    });

    it('a field resolver that starts after the response was ready cannot write either', async () => {
      const body = await t.gql(
        '{ lateParent(tag: "late", ms: 300) { field { txid } } failNow(tag: "now") }',
      );
      expect(body.data).toBeNull();
      await waitFor(() => probe.late.length === 1);
      expect(probe.late).toEqual(['SessionContextEndedError']);
      expect(await t.rows()).toBe(0);
    });

    it('ten operations at once on a pool of two: each in its own transaction, every row its own', async () => {
      const small = await createGraphqlApp(engine, { ...options, poolSize: 2 });
      try {
        const bodies = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            small.gql(`mutation { write(tag: "op${i}") { txid field { txid } batched { txid } } }`),
          ),
        );
        const perOperation = bodies.map((body) => {
          expect(body.errors).toBeUndefined();
          const ids = new Set(txids(body.data));
          expect(ids.size).toBe(1);
          return [...ids][0]!;
        });
        expect(new Set(perOperation).size).toBe(10);
        if (engine.name === 'postgres') {
          const rows = await rowsWithXmin(small.dataSource);
          expect(rows).toHaveLength(30);
          for (const row of rows) {
            const i = Number(/^op(\d+)/.exec(row.text)![1]);
            expect(row.xmin).toBe(perOperation[i]);
          }
        } else {
          expect(await small.rows()).toBe(30);
        }
        await small.expectClean();
      } finally {
        await closeApp(small, engine);
      }
    });
  },
);

async function waitFor(probeFn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probeFn()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
