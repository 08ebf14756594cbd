import { type Context, metrics, trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  type Span,
  type SpanProcessor,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/** Counts starts and ends of every span (a span ended twice, or never, shows here). */
export class EndCounter implements SpanProcessor {
  readonly started = new Map<string, Span>();
  readonly ends = new Map<string, number>();
  onStart(span: Span, _context: Context): void {
    this.started.set(span.spanContext().spanId, span);
  }
  onEnd(span: ReadableSpan): void {
    const id = span.spanContext().spanId;
    this.ends.set(id, (this.ends.get(id) ?? 0) + 1);
  }
  /** Names of spans started but never ended. */
  open(): string[] {
    return [...this.started].filter(([id]) => !this.ends.has(id)).map(([, span]) => span.name);
  }
  /** Ids of spans ended more than once. */
  endedTwice(): string[] {
    return [...this.ends].filter(([, n]) => n > 1).map(([id]) => id);
  }
  reset(): void {
    this.started.clear();
    this.ends.clear();
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** A metric reader the test collects by hand. */
export class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  /** The data points of metric `name`, now. */
  async points(name: string): Promise<Array<DataPoint<unknown>>> {
    const { resourceMetrics } = await this.collect();
    const points: Array<DataPoint<unknown>> = [];
    for (const scope of resourceMetrics.scopeMetrics)
      for (const metric of scope.metrics)
        if (metric.descriptor.name === name) points.push(...(metric.dataPoints as never[]));
    return points;
  }
  /** Sum of a counter's (or an observable's) points matching `match`. */
  async sum(name: string, match: Record<string, unknown> = {}): Promise<number> {
    let total = 0;
    for (const point of await this.points(name))
      if (Object.entries(match).every(([k, v]) => point.attributes[k] === v))
        total += point.value as number;
    return total;
  }
  /** Number of recordings of a histogram matching `match`. */
  async count(name: string, match: Record<string, unknown> = {}): Promise<number> {
    let total = 0;
    for (const point of await this.points(name))
      if (Object.entries(match).every(([k, v]) => point.attributes[k] === v))
        total += (point.value as Histogram).count;
    return total;
  }
}

/** A registered NodeTracerProvider with an in-memory exporter and an end counter. */
export function tracing() {
  const exporter = new InMemorySpanExporter();
  const counter = new EndCounter();
  const provider = new NodeTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter), counter],
  });
  provider.register();
  return { exporter, counter, provider };
}

/** A MeterProvider with a hand-collected reader (set globally when `global`). */
export function metering(global = false) {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  if (global) metrics.setGlobalMeterProvider(provider);
  return { reader, provider };
}

/** The finished span named `name` (exactly one), or throws. */
export function only(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((span) => span.name === name);
  if (found.length !== 1)
    throw new Error(`${found.length} spans named ${name}: ${spans.map((s) => s.name).join(', ')}`);
  return found[0]!;
}

/** The parent span id of a finished span. */
export function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** The id of the span active now. */
export function activeSpanId(): string | undefined {
  return trace.getActiveSpan()?.spanContext().spanId;
}
