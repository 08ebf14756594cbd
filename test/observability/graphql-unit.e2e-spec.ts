import { tracingChannel } from 'node:diagnostics_channel';
import { UNIT_CHANNEL, type UnitMessage } from '../../src/index.js';
import { closeApp } from '../correctness/support-b.js';
import {
  createGraphqlApp,
  type DriverName,
  type GraphqlApp,
  probe,
} from '../graphql/graphql-app.js';
import { engines } from '../support/engines.js';

const SETUPS: Array<{ driver: DriverName; enhancers: 'none' | 'interceptors' }> = [
  { driver: 'apollo', enhancers: 'none' },
  { driver: 'apollo', enhancers: 'interceptors' },
  { driver: 'mercurius', enhancers: 'none' },
  { driver: 'mercurius', enhancers: 'interceptors' },
];
const cases = engines.flatMap((engine) => SETUPS.map((setup) => ({ engine, ...setup })));

describe.each(cases)(
  "Tracing channels: a GraphQL operation's unit names its operation ($driver, field enhancers: $enhancers, $engine.name)",
  ({ engine, driver, enhancers }) => {
    let t: GraphqlApp;

    beforeAll(async () => {
      t = await createGraphqlApp(engine, {
        driver,
        enhancers: enhancers === 'none' ? [] : [enhancers],
      });
    });
    beforeEach(async () => {
      probe.engine = engine;
      probe.batches = [];
      probe.late = [];
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => t.expectClean());
    afterAll(() => closeApp(t, engine));

    it('kind graphql, route "mutation SaveOne", the root resolver as handler', async () => {
      const ends: UnitMessage[] = [];
      const handlers = {
        start: () => undefined,
        end: () => undefined,
        asyncStart: () => undefined,
        error: () => undefined,
        asyncEnd: (message: UnitMessage) => void ends.push({ ...message }),
      };
      tracingChannel(UNIT_CHANNEL).subscribe(handlers as never);
      try {
        const body = await t.gql(`mutation SaveOne { write(tag: "named") { txid } }`);
        expect(body.errors).toBeUndefined();
      } finally {
        tracingChannel(UNIT_CHANNEL).unsubscribe(handlers as never);
      }
      expect(ends).toEqual([
        {
          kind: 'graphql',
          route: 'mutation SaveOne',
          outcome: 'committed',
          handler: 'ProbeResolver.write()',
        },
      ]);
      expect(await t.texts()).toEqual(['named']);
    });
  },
);
