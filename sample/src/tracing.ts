// OpenTelemetry for the sample, switched on with `OTEL=console npm start`: the SDK, the http and pg
// instrumentations and this library's, with an exporter that prints each request's trace as a
// tree when it ends. Imported first by main.ts, so that the instrumentations hook `require()`
// before Nest, TypeORM and pg load (as an app's tracing.ts does).
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { TypeOrmContextInstrumentation } from 'nestjs-typeorm-context/opentelemetry';

/** Prints each trace as an indented tree once its root span ended. */
class TreeExporter implements SpanExporter {
  private readonly traces = new Map<string, ReadableSpan[]>();

  export(spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    for (const span of spans) {
      const id = span.spanContext().traceId;
      const trace = this.traces.get(id) ?? [];
      trace.push(span);
      this.traces.set(id, trace);
      if (span.parentSpanContext === undefined) {
        this.traces.delete(id);
        console.log(`\n[trace ${id.slice(0, 8)}]\n${tree(trace).join('\n')}`);
      }
    }
    done({ code: 0 });
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The spans of one trace, one line each, children under their parent. */
function tree(spans: ReadableSpan[]): string[] {
  const children = new Map<string | undefined, ReadableSpan[]>();
  const start = (span: ReadableSpan) => span.startTime[0] * 1e9 + span.startTime[1];
  for (const span of [...spans].sort((a, b) => start(a) - start(b))) {
    const parent = span.parentSpanContext?.spanId;
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (span: ReadableSpan, depth: number) => {
    const ms = span.duration[0] * 1e3 + span.duration[1] / 1e6;
    const query = span.attributes['db.query.text'];
    const name = query === undefined ? span.name : `${span.name}: ${String(query).slice(0, 60)}`;
    lines.push(`${'  '.repeat(depth)}${name}  ${ms.toFixed(1)} ms`);
    for (const child of children.get(span.spanContext().spanId) ?? []) walk(child, depth + 1);
  };
  for (const root of children.get(undefined) ?? []) walk(root, 0);
  return lines;
}

if (process.env.OTEL === 'console') {
  const provider = new NodeTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(new TreeExporter())],
  });
  provider.register();
  registerInstrumentations({
    instrumentations: [
      new HttpInstrumentation(),
      new PgInstrumentation(),
      new TypeOrmContextInstrumentation(),
    ],
  });
  console.log('[otel] tracing on: each request prints its trace');
}
