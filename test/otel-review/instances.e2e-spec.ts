// Adversarial review of the OpenTelemetry subpath (attacks that held): disable() leaves no
// subscriber and no scope; enable() again; setTracerProvider() after enable; forRoot metrics with
// the meter provider registered first. Real SDK and databases; a block's span is read as the span
// active inside the block.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { metrics } from '@opentelemetry/api';
import { channel, tracingChannel } from 'node:diagnostics_channel';
import {
  CONNECTION_CHANNEL,
  CONNECTION_RELEASE_CHANNEL,
  SAVEPOINT_CHANNEL,
  TRANSACTION_CHANNEL,
  UNIT_CHANNEL,
} from '../../src/index.js';
import { traceScope } from '../../src/diagnostics/scope.js';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { metering, tracing } from './otel-sdk.js';
import { ours as oursIn, Writer, writerParts } from './writer.js';

const { exporter, counter } = tracing();
const ours = () => oursIn(exporter);

for (const engine of engines) {
  describe(`OpenTelemetry instances (${engine.name})`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await createTestApp(engine, writerParts());
    });
    afterAll(() => app.close());
    afterEach(() => {
      exporter.reset();
      counter.reset();
    });

    it('after disable(): no subscriber on any channel and no trace scope', async () => {
      const instrumentation = new TypeOrmContextInstrumentation();
      await app.http().get('/write').expect(200);
      expect(ours().length).toBeGreaterThan(0);
      instrumentation.disable();
      for (const name of [UNIT_CHANNEL, TRANSACTION_CHANNEL, CONNECTION_CHANNEL, SAVEPOINT_CHANNEL])
        expect(tracingChannel(name).hasSubscribers).toBe(false);
      expect(channel(CONNECTION_RELEASE_CHANNEL).hasSubscribers).toBe(false);
      expect(traceScope()).toBeUndefined();
      exporter.reset();
      await app.http().get('/write').expect(200);
      expect(ours()).toEqual([]);
    });

    it('enable() after disable() traces again, the block span active in the block', async () => {
      const instrumentation = new TypeOrmContextInstrumentation();
      instrumentation.disable();
      instrumentation.enable();
      const writer = app.app.get(Writer);
      writer.seen.length = 0;
      await app.http().get('/write').expect(200);
      const block = ours().find((span) => span.name === 'transaction.join Writer.write()');
      expect(block).toBeDefined();
      expect(writer.seen).toEqual([block!.spanContext().spanId]);
      instrumentation.disable();
      expect(counter.open()).toEqual([]);
    });

    it('setTracerProvider() after enable: the new provider gets the spans', async () => {
      const other = tracing();
      const instrumentation = new TypeOrmContextInstrumentation();
      instrumentation.setTracerProvider(other.provider);
      await app.http().get('/write').expect(200);
      instrumentation.disable();
      expect(
        other.exporter
          .getFinishedSpans()
          .some((span) => span.name === 'unit WriteController.write()'),
      ).toBe(true);
    });
  });

  describe(`forRoot({ instrumentations }) (${engine.name})`, () => {
    afterEach(() => {
      exporter.reset();
      counter.reset();
    });

    it('control: a meter provider registered globally before the instance was made gets the metrics', async () => {
      const { reader } = metering(true);
      const instrumentation = new TypeOrmContextInstrumentation({ enabled: false });
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
