import { request as httpRequest } from 'node:http';
import type { ApolloDriver } from '@nestjs/apollo';
import { GraphQLModule } from '@nestjs/graphql';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { closeApp } from '../correctness/support-b.js';
import { eventually } from '../support/create-app.js';
import { engines, type Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  createGraphqlApp,
  type DriverName,
  type GraphqlApp,
  type GraphqlResponse,
  probe,
  rowsWithXmin,
} from './graphql-app.js';

const DRIVERS: DriverName[] = ['apollo', 'mercurius'];
const cases = engines.flatMap((engine) => DRIVERS.map((driver) => ({ engine, driver })));

/** Every txid found in a response body, wherever it sits. */
function txids(value: unknown): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(txids);
  return Object.entries(value).flatMap(([key, inner]) =>
    key === 'txid' ? [String(inner)] : txids(inner),
  );
}

/** Posts `query` and destroys the connection once `leave()` resolves, without reading an answer. */
function postAndLeave(t: GraphqlApp, query: string, leave: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = t.app.getHttpServer();
    const listening = server.listening
      ? Promise.resolve()
      : new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
    void listening.then(() => {
      const { port } = server.address() as { port: number };
      const payload = JSON.stringify({ query });
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      });
      req.on('error', () => undefined); // destroyed on purpose
      req.end(payload);
      leave().then(() => {
        req.destroy();
        resolve();
      }, reject);
    });
  });
}

describe.each(cases)(
  'GraphQL attacks ($driver, $engine.name)',
  ({ engine, driver }: { engine: Engine; driver: DriverName }) => {
    let t: GraphqlApp;
    const batching =
      driver === 'mercurius' ? { allowBatchedQueries: true } : { allowBatchedHttpRequests: true };

    beforeAll(async () => {
      t = await createGraphqlApp(engine, { driver, graphql: batching });
    });
    beforeEach(async () => {
      probe.engine = engine;
      probe.started = [];
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    it('a client that leaves mid-operation changes nothing: the operation ends as it would have', async () => {
      await postAndLeave(t, 'mutation { slowWrite(tag: "gone", ms: 300) { txid } }', () =>
        eventually(() => probe.started.includes('gone')),
      );
      await eventually(async () => (await t.rows()) === 2);
      expect(await t.texts()).toEqual(['gone', 'gone:before']);
      if (engine.name === 'postgres') {
        const [first, second] = await rowsWithXmin(t.dataSource);
        expect(first!.xmin).toBe(second!.xmin);
      }
    });

    it('a batch of operations is one unit: one failing operation rolls back the batch', async () => {
      const send = async (queries: string[]) =>
        (
          await t
            .http()
            .post('/graphql')
            .send(queries.map((query) => ({ query })))
            .expect(200)
        ).body as GraphqlResponse[];
      const failed = await send([
        'mutation { write(tag: "b1") { txid field { txid } } }',
        'mutation { writeFail(tag: "b2") }',
      ]);
      expect(failed[1]!.errors?.[0]?.message).toBe('refused b2');
      expect(await t.rows()).toBe(0);
      const ok = await send([
        'mutation { write(tag: "b1") { txid field { txid } } }',
        'mutation { write(tag: "b2") { txid batched { txid } } }',
      ]);
      expect(ok.map((body) => body.errors)).toEqual([undefined, undefined]);
      expect(new Set(txids(ok)).size).toBe(1);
      expect(await t.texts()).toEqual(['b1', 'b1:field', 'b2', 'b2:batch']);
    });

    it('inside a test transaction: operations are savepoints, rolled back with the test', async () => {
      const tx = await TestTransaction.start(t.app);
      try {
        const body = await t.gql('mutation { write(tag: "in test") { txid field { txid } } }');
        expect(body.errors).toBeUndefined();
        const failed = await t.gql(
          'mutation { one: write(tag: "undone") { txid } two: writeFail(tag: "x") }',
        );
        expect(failed.errors?.[0]?.message).toBe('refused x');
        const seen = await t.dataSource.query('SELECT text FROM example ORDER BY text');
        expect(seen).toEqual([{ text: 'in test' }, { text: 'in test:field' }]);
      } finally {
        await tx.rollback();
      }
      expect(await t.rows()).toBe(0);
    });

    it('two apps in one process serve operations at once, each in its own units', async () => {
      const other = await createGraphqlApp(engine, { driver });
      try {
        const bodies = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 === 0 ? t : other).gql(
              `mutation { write(tag: "app${i % 2}-${i}") { txid field { txid } } }`,
            ),
          ),
        );
        for (const body of bodies) {
          expect(body.errors).toBeUndefined();
          expect(new Set(txids(body.data)).size).toBe(1);
        }
        expect(new Set(bodies.map((body) => txids(body.data)[0])).size).toBe(6);
        expect(await t.rows()).toBe(12);
        await other.expectClean();
      } finally {
        await closeApp(other, engine);
      }
    });
  },
);

describe.each(engines)('Apollo executeOperation() ($name)', (engine) => {
  it("inside runInNewContext(), an operation's resolvers join the caller's unit", async () => {
    const t = await createGraphqlApp(engine, { driver: 'apollo' });
    try {
      const server = t.app.get<GraphQLModule<ApolloDriver>>(GraphQLModule).graphQlAdapter.instance;
      const context = t.app.get(SessionContext);
      const result = await t.app.get(SessionFactory).runInNewContext(async () => {
        const response = await server.executeOperation({
          query: 'mutation { write(tag: "op") { txid field { txid } } }',
        });
        await context.session().insert(Example, { text: 'after the operation' });
        return response;
      });
      expect(result.body.kind === 'single' && result.body.singleResult.errors).toBeUndefined();
      expect(await t.texts()).toEqual(['after the operation', 'op', 'op:field']);
      if (engine.name === 'postgres') {
        expect(new Set((await rowsWithXmin(t.dataSource)).map((row) => row.xmin)).size).toBe(1);
      }
      await t.expectClean();
    } finally {
      await closeApp(t, engine);
    }
  });
});
