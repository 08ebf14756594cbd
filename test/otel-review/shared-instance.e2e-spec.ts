// Review: one TypeOrmContextInstrumentation given to forRoot() of two apps of one process; the
// first app's shutdown disables it for the second, which still runs.
import { afterEach, describe, expect, it } from '@jest/globals';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { createTestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { tracing } from './otel-sdk.js';
import { ours, writerParts } from './writer.js';

const { exporter, counter } = tracing();

for (const engine of engines) {
  describe(`forRoot({ instrumentations }) shared by two apps (${engine.name})`, () => {
    afterEach(() => {
      exporter.reset();
      counter.reset();
    });

    it('one instance shared by two apps: closing one keeps tracing the other that still runs', async () => {
      const shared = new TypeOrmContextInstrumentation({ enabled: false });
      const first = await createTestApp(engine, writerParts([shared]));
      const second = await createTestApp(engine, writerParts([shared]));
      try {
        await first.close();
        exporter.reset();
        await second.http().get('/write').expect(200);
        // The second app still runs with the instrumentation it was given.
        expect(ours(exporter).map((span) => span.name)).toContain('unit WriteController.write()');
      } finally {
        await second.close();
      }
    });
  });
}
