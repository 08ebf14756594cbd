// The OpenTelemetry subpath under the testing kit: requests inside `TestTransaction` make their
// usual spans, each ended once, the block's span active in the block; nothing they wrote stays.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { tracing } from './otel-sdk.js';
import { ours, Writer, writerParts } from './writer.js';

const { exporter, counter } = tracing();

for (const engine of engines) {
  describe(`OpenTelemetry under the testing kit (${engine.name})`, () => {
    let app: TestApp;
    const instrumentation = new TypeOrmContextInstrumentation({ enabled: false });
    beforeAll(async () => {
      app = await createTestApp(engine, writerParts([instrumentation]));
    });
    afterAll(() => app.close());

    it("two requests in one test transaction: their units' spans, each ended once, rolled back after", async () => {
      exporter.reset();
      counter.reset();
      const writer = app.app.get(Writer);
      writer.seen.length = 0;
      const tx = await TestTransaction.start(app.app);
      try {
        await app.http().get('/write').expect(200);
        await app.http().get('/write').expect(200);
        expect(await app.texts()).toEqual(['w', 'w']); // seen inside the test transaction
      } finally {
        await tx.rollback();
      }
      expect(await app.texts()).toEqual([]);
      const spans = ours(exporter);
      const units = spans.filter((span) => span.name === 'unit WriteController.write()');
      const blocks = spans.filter((span) => span.name === 'transaction.join Writer.write()');
      expect(units).toHaveLength(2);
      expect(blocks).toHaveLength(2);
      for (const unit of units)
        expect(unit.attributes['nestjs_typeorm_context.outcome']).toBe('committed');
      // Each block's span is the one active inside it, under its own request's unit.
      expect(writer.seen).toEqual(blocks.map((block) => block.spanContext().spanId));
      expect(blocks.map((block) => block.parentSpanContext?.spanId).sort()).toEqual(
        units.map((unit) => unit.spanContext().spanId).sort(),
      );
      expect(counter.open()).toEqual([]);
      expect(counter.endedTwice()).toEqual([]);
    });
  });
}
