import { afterEach, describe, expect, it } from '@jest/globals';
import { engines } from '../support/engines.js';
import { createGraphqlApp, type GraphqlApp } from '../graphql/graphql-app.js';
import { record, type Recorder } from '../observability/recorder.js';

/**
 * Review bug: with Mercurius, a document of two operations run with `operationName` gets the
 * route of the document's FIRST operation (`preExecution` takes the first OperationDefinition),
 * not the one that ran. docs/observability.md: `route` is the operation's type and name.
 */
describe.each(engines)('Mercurius unit route with operationName, review ($name)', (engine) => {
  let app: GraphqlApp | undefined;
  let recorder: Recorder | undefined;

  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    await app?.close();
    app = undefined;
  });

  it('names the operation operationName picked, not the first of the document', async () => {
    app = await createGraphqlApp(engine, { driver: 'mercurius' });
    recorder = record();
    const response = await app.http().post('/graphql').send({
      query:
        'query ReadFirst { probe(tag: "q") { tag } } mutation SaveSecond { write(tag: "m") { tag } }',
      operationName: 'SaveSecond',
    });
    expect(response.body.errors).toBeUndefined();
    // The mutation ran, and only it: its row is the only one.
    expect(await app.texts()).toEqual(['m']);
    const ends = recorder.events.filter((e) => e.channel === 'unit' && e.event === 'asyncEnd');
    expect(ends).toEqual([
      expect.objectContaining({
        kind: 'graphql',
        route: 'mutation SaveSecond',
        handler: 'ProbeResolver.write()',
        outcome: 'committed',
      }),
    ]);
  });
});
