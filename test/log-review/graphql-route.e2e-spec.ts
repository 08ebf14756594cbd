import { afterEach, describe, expect, it } from '@jest/globals';
import { engines } from '../support/engines.js';
import { createGraphqlApp, type DriverName, type GraphqlApp } from '../graphql/graphql-app.js';
import { record, type Recorder } from '../observability/recorder.js';

/**
 * Review attack: the `route` of a GraphQL operation's unit (docs/observability.md, `unit`
 * channel): the operation's type and name, `handler` its first root resolver.
 */
describe.each(engines)('GraphQL unit route, review ($name)', (engine) => {
  let app: GraphqlApp | undefined;
  let recorder: Recorder | undefined;

  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    await app?.close();
    app = undefined;
  });

  const ends = () =>
    recorder!.events.filter((event) => event.channel === 'unit' && event.event === 'asyncEnd');

  it('apollo: names the operation operationName picked in a document of two operations', async () => {
    app = await createGraphqlApp(engine, { driver: 'apollo' });
    recorder = record();
    const response = await app.http().post('/graphql').send({
      query:
        'query ReadFirst { probe(tag: "q") { tag } } mutation SaveSecond { write(tag: "m") { tag } }',
      operationName: 'SaveSecond',
    });
    expect(response.body.errors).toBeUndefined();
    expect(await app.texts()).toEqual(['m']);
    expect(ends()).toEqual([
      expect.objectContaining({
        kind: 'graphql',
        route: 'mutation SaveSecond',
        handler: 'ProbeResolver.write()',
        outcome: 'committed',
      }),
    ]);
  });

  it.each<DriverName>(['apollo', 'mercurius'])(
    '%s: names an anonymous query "query (anonymous)"',
    async (driver) => {
      app = await createGraphqlApp(engine, { driver });
      recorder = record();
      const response = await app.gql('{ probe(tag: "anon") { tag } }');
      expect(response.errors).toBeUndefined();
      expect(ends()).toEqual([
        expect.objectContaining({
          kind: 'graphql',
          route: 'query (anonymous)',
          handler: 'ProbeResolver.probe()',
          outcome: 'committed',
        }),
      ]);
    },
  );
});
