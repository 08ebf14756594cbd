import {
  type Meter,
  type MeterProvider,
  metrics,
  trace,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { addTraceScope, removeTraceScope } from '../diagnostics/scope.js';
import { ChannelMetrics } from './metrics.js';
import { ChannelSpans } from './spans.js';

/** The instrumentation's name (its tracer's and meter's). */
export const INSTRUMENTATION_NAME = 'nestjs-typeorm-context';
/** The instrumentation's version: the package's. */
export const INSTRUMENTATION_VERSION = '0.1.0';

/** Options of `TypeOrmContextInstrumentation`. */
export interface TypeOrmContextInstrumentationConfig {
  /** Whether it is enabled from its construction (OpenTelemetry's convention). Default: true. */
  enabled?: boolean;
  /** Spans for units of work (requests, messages, jobs, `runInNewContext()`). Default: true. */
  units?: boolean;
  /** Spans for transaction blocks (`@Transactional()`, `atomic()`). Default: true. */
  transactions?: boolean;
  /** Spans for sessions taking a pooled connection. Default: true. */
  connections?: boolean;
  /** Spans for savepoints (NESTED blocks). Default: true. */
  savepoints?: boolean;
  /** Spans for the module's hooks and the after-completion callbacks. Default: true. */
  callbacks?: boolean;
  /** The connection-pool metrics and the commit, rollback, retry and fallback counters. Default: true. */
  metrics?: boolean;
}

/**
 * OpenTelemetry instrumentation of nestjs-typeorm-context: spans for units of work, transactions,
 * connection waits, savepoints and callbacks, with the database semantic conventions'
 * attributes, and the connection-pool metrics. An OpenTelemetry `Instrumentation` (give it to
 * `NodeSDK`'s or `registerInstrumentations()`'s `instrumentations`, or to
 * `forRoot({ instrumentations })`). Enabled when constructed unless `enabled: false`; uses the
 * global tracer and meter providers (whenever they are registered) unless given others. One
 * enabled instance traces every app of the process.
 */
export class TypeOrmContextInstrumentation {
  /** The instrumentation's name. */
  readonly instrumentationName = INSTRUMENTATION_NAME;
  /** The instrumentation's version. */
  readonly instrumentationVersion = INSTRUMENTATION_VERSION;
  private config: TypeOrmContextInstrumentationConfig;
  private tracer: Tracer;
  /** The meter provider `setMeterProvider()` gave; undefined: the global one, as it is now. */
  private meterProvider?: MeterProvider;
  /** The provider the current instruments were made on. */
  private meteredBy?: MeterProvider;
  private channelMetrics?: ChannelMetrics;
  private spans?: ChannelSpans;

  constructor(config: TypeOrmContextInstrumentationConfig = {}) {
    this.config = { enabled: true, ...config };
    // The API's global tracer is a proxy: it follows a provider registered later.
    this.tracer = trace.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
    if (this.config.enabled) this.enable();
  }

  /** Subscribes to the module's tracing channels; calling it again does nothing. */
  enable(): void {
    this.config.enabled = true;
    if (this.spans) return;
    const { units, transactions, connections, savepoints, callbacks } = this.config;
    this.spans = new ChannelSpans(
      () => this.tracer,
      () => this.metrics(),
      {
        units: units !== false,
        transactions: transactions !== false,
        connections: connections !== false,
        savepoints: savepoints !== false,
        callbacks: callbacks !== false,
      },
    );
    this.spans.subscribe();
    addTraceScope(this.spans);
    this.metrics(); // the pool's observable metrics, from now on
  }

  /** Unsubscribes: the module publishes nothing again (unless another subscriber listens). */
  disable(): void {
    this.config.enabled = false;
    const spans = this.spans;
    if (spans === undefined) return;
    spans.unsubscribe();
    removeTraceScope(spans);
    this.channelMetrics?.close();
    this.spans = undefined;
    this.channelMetrics = undefined;
    this.meteredBy = undefined;
  }

  /** Uses `provider`'s tracer from now on. */
  setTracerProvider(provider: TracerProvider): void {
    this.tracer = provider.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
  }

  /** Uses `provider`'s meter from now on (the instruments are made again on it). */
  setMeterProvider(provider: MeterProvider): void {
    this.meterProvider = provider;
  }

  /** Replaces the options; they apply at the next `enable()`. */
  setConfig(config: TypeOrmContextInstrumentationConfig): void {
    this.config = { ...config, enabled: this.config.enabled };
  }

  /** The options. */
  getConfig(): TypeOrmContextInstrumentationConfig {
    return this.config;
  }

  /**
   * The instruments, on the meter provider in force now: the metrics API has no proxy provider,
   * so a global provider registered after this instance was made is picked up here.
   */
  private metrics(): ChannelMetrics | undefined {
    if (this.config.metrics === false || this.spans === undefined) return undefined;
    const provider = this.meterProvider ?? metrics.getMeterProvider();
    if (provider !== this.meteredBy) {
      this.channelMetrics?.close();
      const meter: Meter = provider.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
      this.channelMetrics = new ChannelMetrics(meter);
      this.meteredBy = provider;
    }
    return this.channelMetrics;
  }
}
