import {
  type Meter,
  type MeterProvider,
  metrics,
  trace,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { setTraceScope, traceScope } from '../diagnostics/scope.js';
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
 * connection waits and savepoints, with the database semantic conventions' attributes, and the
 * connection-pool metrics. An OpenTelemetry `Instrumentation` (give it to `NodeSDK`'s or
 * `registerInstrumentations()`'s `instrumentations`, or to `forRoot({ instrumentations })`).
 * Enabled when constructed unless `enabled: false`; uses the global tracer and meter providers
 * unless given others. One enabled instance traces every app of the process.
 */
export class TypeOrmContextInstrumentation {
  /** The instrumentation's name. */
  readonly instrumentationName = INSTRUMENTATION_NAME;
  /** The instrumentation's version. */
  readonly instrumentationVersion = INSTRUMENTATION_VERSION;
  private config: TypeOrmContextInstrumentationConfig;
  private tracer: Tracer;
  private meter: Meter;
  private metrics?: ChannelMetrics;
  private spans?: ChannelSpans;

  constructor(config: TypeOrmContextInstrumentationConfig = {}) {
    this.config = { enabled: true, ...config };
    this.tracer = trace.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
    this.meter = metrics.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
    if (this.config.enabled) this.enable();
  }

  /** Subscribes to the module's tracing channels; calling it again does nothing. */
  enable(): void {
    this.config.enabled = true;
    if (this.spans) return;
    if (this.config.metrics !== false) this.metrics = new ChannelMetrics(this.meter);
    const { units, transactions, connections, savepoints, callbacks } = this.config;
    this.spans = new ChannelSpans(
      () => this.tracer,
      () => this.metrics,
      {
        units: units !== false,
        transactions: transactions !== false,
        connections: connections !== false,
        savepoints: savepoints !== false,
        callbacks: callbacks !== false,
      },
    );
    this.spans.subscribe();
    setTraceScope(this.spans);
  }

  /** Unsubscribes: the module publishes nothing again (unless another subscriber listens). */
  disable(): void {
    this.config.enabled = false;
    const spans = this.spans;
    if (spans === undefined) return;
    spans.unsubscribe();
    if (traceScope() === spans) setTraceScope(undefined);
    this.metrics?.close();
    this.spans = undefined;
    this.metrics = undefined;
  }

  /** Uses `provider`'s tracer from now on. */
  setTracerProvider(provider: TracerProvider): void {
    this.tracer = provider.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
  }

  /** Uses `provider`'s meter from now on (the instruments are made again on it). */
  setMeterProvider(provider: MeterProvider): void {
    this.meter = provider.getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
    if (this.metrics === undefined) return;
    this.metrics.close();
    this.metrics = new ChannelMetrics(this.meter);
  }

  /** Replaces the options; they apply at the next `enable()`. */
  setConfig(config: TypeOrmContextInstrumentationConfig): void {
    this.config = { ...config, enabled: this.config.enabled };
  }

  /** The options. */
  getConfig(): TypeOrmContextInstrumentationConfig {
    return this.config;
  }
}
