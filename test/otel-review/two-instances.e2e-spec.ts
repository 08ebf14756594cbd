// Review: two TypeOrmContextInstrumentation instances enabled; disabling the second one clears
// the process's trace scope although the first is still enabled and subscribed: its blocks' spans
// are no longer active inside the blocks (no driver query span nests under them).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { tracing } from './otel-sdk.js';
import { ours, Writer, writerParts } from './writer.js';

const { exporter } = tracing();

for (const engine of engines) {
  describe(`two instrumentation instances (${engine.name})`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await createTestApp(engine, writerParts());
    });
    afterAll(() => app.close());

    it('two instances: disabling the second leaves the first one nesting its blocks', async () => {
      exporter.reset();
      const first = new TypeOrmContextInstrumentation();
      const second = new TypeOrmContextInstrumentation();
      second.disable();
      const writer = app.app.get(Writer);
      writer.seen.length = 0;
      await app.http().get('/write').expect(200);
      first.disable();
      const block = ours(exporter).find((span) => span.name === 'transaction.join Writer.write()');
      expect(block).toBeDefined();
      // The first instance is still enabled: its block's span is the one active in the block
      // ("A block's work runs with the block's span active").
      expect(writer.seen).toEqual([block!.spanContext().spanId]);
    });
  });
}
