/**
 * An in-process OpenTelemetry SDK for the `ntc-otel*` variants: a NodeTracerProvider (AlwaysOn
 * sampler, BatchSpanProcessor) whose exporter only counts the spans it is given, by
 * instrumentation scope, and drops them; a MeterProvider whose reader never collects. Imports
 * neither TypeORM nor pg: the instrumentations hook `require()`, so they are registered here,
 * before the variant's app (ntc-app.ts) loads them.
 */
import { metrics } from '@opentelemetry/api';
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { TypeormInstrumentation } from '@opentelemetry/instrumentation-typeorm';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { TypeOrmContextInstrumentationConfig } from '../../../dist/opentelemetry/index.js';

/** Which instrumentations a variant registers. */
export interface Instrumented {
  /** This library's `TypeOrmContextInstrumentation`: `true` (spans and metrics) or its options. */
  ours?: boolean | TypeOrmContextInstrumentationConfig;
  /** `@opentelemetry/instrumentation-typeorm`. */
  typeorm?: boolean;
  /** `@opentelemetry/instrumentation-pg`. */
  pg?: boolean;
}

/** Spans exported since the last reset, by instrumentation scope, and by scope and span name. */
export interface SpanCounts {
  byScope: Record<string, number>;
  byName: Record<string, number>;
}

/** Counts the spans it is given and drops them (so exporting costs next to nothing). */
class CountingExporter implements SpanExporter {
  counts: SpanCounts = { byScope: {}, byName: {} };

  export(spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    for (const span of spans) {
      const scope = span.instrumentationScope.name;
      const name = `${scope}: ${span.name}`;
      this.counts.byScope[scope] = (this.counts.byScope[scope] ?? 0) + 1;
      this.counts.byName[name] = (this.counts.byName[name] ?? 0) + 1;
    }
    done({ code: 0 }); // ExportResultCode.SUCCESS
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** A metric reader nobody calls: the instruments record, nothing is ever collected. */
class IdleReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The span counter of a running SDK, as the server reports it over IPC. */
export interface SpanCounter {
  /** Exports every ended span (the batch processor holds up to 512), then answers the counts. */
  counts(): Promise<SpanCounts>;
  /** Zeroes the counts after exporting what was pending. */
  reset(): Promise<void>;
}

/** Sets the SDK up globally and registers the instrumentations `which` names. */
export async function startOpenTelemetry(which: Instrumented): Promise<SpanCounter> {
  const exporter = new CountingExporter();
  const processor = new BatchSpanProcessor(exporter);
  const tracerProvider = new NodeTracerProvider({
    sampler: new AlwaysOnSampler(),
    spanProcessors: [processor],
  });
  tracerProvider.register();
  const meterProvider = new MeterProvider({ readers: [new IdleReader()] });
  metrics.setGlobalMeterProvider(meterProvider);
  const instrumentations: Instrumentation[] = [];
  if (which.pg) instrumentations.push(new PgInstrumentation());
  if (which.typeorm) instrumentations.push(new TypeormInstrumentation());
  registerInstrumentations({ tracerProvider, meterProvider, instrumentations });
  if (which.ours) {
    // This library's subpath from the same build as the app (bench/.tmp/dist).
    const library = process.env.BENCH_LIBRARY === 'dist-previous' ? 'dist-previous' : 'dist';
    const { TypeOrmContextInstrumentation } = (await import(
      `../../../${library}/opentelemetry/index.js`
    )) as typeof import('../../../dist/opentelemetry/index.js');
    registerInstrumentations({
      tracerProvider,
      meterProvider,
      instrumentations: [
        new TypeOrmContextInstrumentation(
          which.ours === true ? {} : which.ours,
        ) as unknown as Instrumentation,
      ],
    });
  }
  return {
    counts: async () => {
      await processor.forceFlush();
      return exporter.counts;
    },
    reset: async () => {
      await processor.forceFlush();
      exporter.counts = { byScope: {}, byName: {} };
    },
  };
}
