import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { EndCounter, metering } from '../otel-review/otel-sdk.js';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/**
 * OpenTelemetry for the programs marked `traced`: the module's instrumentation enabled for the
 * program (so every traced path of the core runs: messages, scopes, spans, metrics), and a span
 * processor that counts starts and ends, to check that every span the program made ended once.
 */
export class FuzzTracing {
  private readonly counter = new EndCounter();
  private readonly instrumentation = new TypeOrmContextInstrumentation({ enabled: false });

  constructor() {
    const provider = new NodeTracerProvider({ spanProcessors: [this.counter] });
    this.instrumentation.setTracerProvider(provider);
    this.instrumentation.setMeterProvider(metering().provider);
  }

  /** Starts tracing a program. */
  start(): void {
    this.counter.reset();
    this.instrumentation.enable();
  }

  /**
   * Waits up to `ms` for the spans still open to end. A `connection.acquire` span ends when its
   * wait does, which may be after the program's own work settled (a wait ends when a connection
   * comes, its session ends or its `acquireTimeout` passes): it must end, not end first.
   */
  async quiet(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.counter.open().length > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /** Stops tracing; returns what is wrong with the spans the program made. */
  stop(): string[] {
    this.instrumentation.disable();
    const problems: string[] = [];
    const open = this.counter.open();
    if (open.length > 0) problems.push(`spans never ended: ${open.join(', ')}`);
    const twice = this.counter.endedTwice();
    if (twice.length > 0) problems.push(`${twice.length} span(s) ended twice`);
    return problems;
  }
}
