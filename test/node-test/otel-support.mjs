// The OpenTelemetry SDK of the node:test files (registered before the framework and the drivers
// load, as an app's tracing.ts does), and a renderer of finished spans as an indented tree (for
// assertions and for the trace picture in docs/observability.md).
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/** A metric reader the test collects by hand. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  onForceFlush() {
    return Promise.resolve();
  }
  onShutdown() {
    return Promise.resolve();
  }
}

/**
 * Registers a tracer provider with an in-memory exporter and a meter provider with a reader
 * collected by hand, and enables `instrumentations` on them.
 */
export function otelSdk(instrumentations) {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new NodeTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  tracerProvider.register();
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  registerInstrumentations({ tracerProvider, meterProvider, instrumentations });
  return { exporter, reader };
}

/** Applies method decorators the way TypeScript does (the node:test files are plain JavaScript). */
export function decorateMethod(target, key, ...decorators) {
  const descriptor = Object.getOwnPropertyDescriptor(target.prototype, key);
  Object.defineProperty(
    target.prototype,
    key,
    Reflect.decorate(decorators, target.prototype, key, descriptor) ?? descriptor,
  );
}

/** The children of each span id, in start order; roots under `null`. */
export function childrenOf(spans) {
  const ids = new Set(spans.map((span) => span.spanContext().spanId));
  const children = new Map();
  const sorted = [...spans].sort((a, b) => toNs(a.startTime) - toNs(b.startTime));
  for (const span of sorted) {
    const parent = parentId(span);
    const key = parent && ids.has(parent) ? parent : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(span);
  }
  return children;
}

/** The parent span id of `span` (SDK 1.x and 2.x). */
export function parentId(span) {
  return span.parentSpanContext?.spanId ?? span.parentSpanId;
}

/** The spans as lines: `name  (duration ms)`, two spaces of indent per level. */
export function renderTree(spans, describe = (span) => span.name) {
  const children = childrenOf(spans);
  const lines = [];
  const walk = (span, depth) => {
    const ms = (toNs(span.endTime) - toNs(span.startTime)) / 1e6;
    lines.push(`${'  '.repeat(depth)}${describe(span)}  (${ms.toFixed(1)} ms)`);
    for (const child of children.get(span.spanContext().spanId) ?? []) walk(child, depth + 1);
  };
  for (const root of children.get(null) ?? []) walk(root, 0);
  return lines;
}

function toNs([seconds, nanos]) {
  return seconds * 1e9 + nanos;
}
