// Review: forRoot({ instrumentations: [new TypeOrmContextInstrumentation()] }) 'with whatever tracer
// and meter providers are registered globally': a meter provider registered after the instance
// was made (the AppModule file loaded first), before the app starts, never gets a metric.
import { afterEach, describe, expect, it } from '@jest/globals';
import { metrics } from '@opentelemetry/api';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { createTestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { metering, tracing } from './otel-sdk.js';
import { writerParts } from './writer.js';

const { exporter, counter } = tracing();

for (const engine of engines) {
  describe(`forRoot({ instrumentations }) and a meter provider registered later (${engine.name})`, () => {
    afterEach(() => {
      exporter.reset();
      counter.reset();
    });

    it('a meter provider registered globally after the instance was made (before the app starts) gets the metrics', async () => {
      // As in an AppModule file: the instance is made when the module's decorator runs, the SDK
      // starts later in bootstrap(), before NestFactory.create().
      const instrumentation = new TypeOrmContextInstrumentation({ enabled: false });
      const { reader } = metering(true);
      const started = await createTestApp(engine, writerParts([instrumentation]));
      try {
        await started.http().get('/write').expect(200);
        expect(
          await reader.sum('nestjs_typeorm_context.commits', {
            'nestjs_typeorm_context.scope': 'unit',
          }),
        ).toBe(1);
        expect(await reader.count('db.client.connection.wait_time')).toBe(1);
      } finally {
        await started.close();
        metrics.disable();
      }
    });
  });
}
