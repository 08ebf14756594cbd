import { tracingChannel } from 'node:diagnostics_channel';
import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import {
  CALLBACK_CHANNEL,
  type CallbackMessage,
  CONNECTION_CHANNEL,
  type ConnectionMessage,
  connectionReleaseChannel,
  SAVEPOINT_CHANNEL,
  type SavepointMessage,
  TRANSACTION_CHANNEL,
  type TransactionMessage,
  UNIT_CHANNEL,
  type UnitMessage,
} from '../diagnostics/channels.js';
import { currentUnitMessage, originOf, type TraceScope } from '../diagnostics/scope.js';
import { dbAttributes, errorType, PREFIX, poolName } from './attributes.js';
import type { ChannelMetrics } from './metrics.js';

/** What `ChannelSpans` traces. */
export interface TracedKinds {
  /** Spans for units of work. */
  units: boolean;
  /** Spans for transaction blocks. */
  transactions: boolean;
  /** Spans for sessions taking a connection. */
  connections: boolean;
  /** Spans for savepoints. */
  savepoints: boolean;
  /** Spans for the module's hooks and transactions' after-completion callbacks. */
  callbacks: boolean;
}

/** A tracing channel's subscribers. */
interface Handlers<M extends object> {
  start: (message: M) => void;
  end: (message: M) => void;
  asyncStart: (message: M) => void;
  asyncEnd: (message: M) => void;
  error: (message: M) => void;
}

/**
 * Turns the module's tracing channels into OpenTelemetry spans (and feeds `ChannelMetrics`), and
 * is the `TraceScope` the core runs traced work in: a block's work runs with its span active, so
 * a driver instrumentation's query spans land under the transaction that sent them. A unit's
 * span goes under what was active where the unit began; its own statements (outside any block),
 * blocks and COMMIT go under it while the code runs there (the unit's parent span is the active
 * one); code that made a span of its own keeps it.
 */
export class ChannelSpans implements TraceScope {
  private readonly spans = new WeakMap<object, Span>();
  /** Each traced unit's parent span (the span active where it began), or `undefined`. */
  private readonly unitParents = new WeakMap<object, Span | undefined>();
  private readonly subscriptions: Array<() => void> = [];

  constructor(
    private readonly tracer: () => Tracer,
    private readonly metrics: () => ChannelMetrics | undefined,
    private readonly kinds: TracedKinds,
  ) {}

  /** Subscribes to the channels. */
  subscribe(): void {
    this.on<UnitMessage>(UNIT_CHANNEL, {
      start: (message) => this.startUnit(message),
      asyncEnd: (message) => this.endUnit(message),
    });
    this.on<TransactionMessage>(TRANSACTION_CHANNEL, {
      start: (message) => this.startTransaction(message),
      asyncEnd: (message) => this.endTransaction(message),
    });
    this.on<ConnectionMessage>(CONNECTION_CHANNEL, {
      start: (message) => this.startConnection(message),
      asyncEnd: (message) => this.endConnection(message),
    });
    this.on<SavepointMessage>(SAVEPOINT_CHANNEL, {
      start: (message) => this.startSavepoint(message),
      asyncEnd: (message) => this.endSavepoint(message),
    });
    this.on<CallbackMessage>(CALLBACK_CHANNEL, {
      start: (message) => this.startCallback(message),
      asyncEnd: (message) => this.endCallback(message),
    });
    const released = (message: unknown): void =>
      this.metrics()?.connectionReleased(message as ConnectionMessage);
    connectionReleaseChannel.subscribe(released);
    this.subscriptions.push(() => connectionReleaseChannel.unsubscribe(released));
  }

  /** Unsubscribes from the channels. */
  unsubscribe(): void {
    for (const unsubscribe of this.subscriptions.splice(0)) unsubscribe();
  }

  /** Runs `fn` with the span of `message` active (a unit's: only where the unit began). */
  run<T>(message: object, fn: () => T): T {
    const span = this.spans.get(message);
    if (span === undefined) return fn();
    const active = context.active();
    if (this.unitParents.has(message) && trace.getSpan(active) !== this.unitParents.get(message))
      return fn();
    return context.with(trace.setSpan(active, span), fn);
  }

  /** The active context where a unit begins: its span's parent, once it has one. */
  capture(): unknown {
    return context.active();
  }

  /**
   * Where a span starting now goes: under the active span, or under the unit's span when the code
   * runs where its unit began.
   */
  private parent(): Context {
    const active = context.active();
    const unit = currentUnitMessage();
    const span = unit && this.spans.get(unit);
    if (span === undefined || trace.getSpan(active) !== this.unitParents.get(unit!)) return active;
    return trace.setSpan(active, span);
  }

  private startUnit(message: UnitMessage): void {
    if (!this.kinds.units) return;
    // Under what was active where the unit began (the request's span), not where its first
    // session happens to be made (perhaps inside a span of the app's own that ends before it).
    const origin = (originOf(message) as Context | undefined) ?? context.active();
    const span = this.tracer().startSpan(
      `unit ${message.handler ?? message.kind}`,
      { kind: SpanKind.INTERNAL, attributes: { [`${PREFIX}.unit.kind`]: message.kind } },
      origin,
    );
    this.spans.set(message, span);
    this.unitParents.set(message, trace.getSpan(origin));
  }

  private endUnit(message: UnitMessage): void {
    this.metrics()?.unitEnded(message);
    const span = this.spans.get(message);
    if (span === undefined) return;
    if (message.handler !== undefined) {
      span.updateName(`unit ${message.handler}`);
      span.setAttribute(`${PREFIX}.unit.handler`, message.handler);
    }
    if (message.route !== undefined) span.setAttribute(`${PREFIX}.unit.route`, message.route);
    if (message.outcome !== undefined) span.setAttribute(`${PREFIX}.outcome`, message.outcome);
    this.finish(message, span, message.outcome === 'error' ? message.error : undefined);
  }

  private startTransaction(message: TransactionMessage): void {
    this.metrics()?.transactionStarted(message);
    if (!this.kinds.transactions) return;
    const attributes: Attributes = {
      ...dbAttributes(message.db),
      [`${PREFIX}.data_source`]: message.dataSource,
      [`${PREFIX}.propagation`]: message.propagation,
      [`${PREFIX}.mode`]: message.mode,
      [`${PREFIX}.attempt`]: message.attempt,
    };
    if (message.label !== undefined) attributes[`${PREFIX}.label`] = message.label;
    if (message.isolationLevel !== undefined)
      attributes[`${PREFIX}.isolation_level`] = message.isolationLevel;
    if (message.readOnly !== undefined) attributes[`${PREFIX}.read_only`] = message.readOnly;
    if (message.replica !== undefined) attributes[`${PREFIX}.replica`] = message.replica;
    const kind = message.mode === 'begin' ? SpanKind.CLIENT : SpanKind.INTERNAL;
    const name = `transaction.${message.mode} ${message.label ?? message.dataSource}`;
    this.spans.set(message, this.tracer().startSpan(name, { kind, attributes }, this.parent()));
  }

  private endTransaction(message: TransactionMessage): void {
    this.metrics()?.transactionEnded(message);
    const span = this.spans.get(message);
    if (span === undefined) return;
    if (message.outcome !== undefined) span.setAttribute(`${PREFIX}.outcome`, message.outcome);
    if (message.reason !== undefined)
      span.setAttribute(`${PREFIX}.rollback_reason`, message.reason);
    if (message.mode === 'begin') {
      const committed =
        message.outcome === 'committed' || message.outcome === 'commit outcome unknown';
      span.setAttribute('db.operation.name', committed ? 'COMMIT' : 'ROLLBACK');
    }
    this.finish(message, span, message.error);
  }

  private startConnection(message: ConnectionMessage): void {
    if (!this.kinds.connections) return;
    const attributes: Attributes = {
      ...dbAttributes(message.db),
      'db.client.connection.pool.name': poolName(message.dataSource, false),
      [`${PREFIX}.data_source`]: message.dataSource,
      [`${PREFIX}.acquire_timeout_ms`]: message.acquireTimeout,
    };
    const name = `connection.acquire ${message.dataSource}`;
    const span = this.tracer().startSpan(
      name,
      { kind: SpanKind.INTERNAL, attributes },
      this.parent(),
    );
    this.spans.set(message, span);
  }

  private endConnection(message: ConnectionMessage): void {
    this.metrics()?.connectionTaken(message);
    const span = this.spans.get(message);
    if (span === undefined) return;
    if (message.waited !== undefined) span.setAttribute(`${PREFIX}.waited_ms`, message.waited);
    if (message.timedOut !== undefined) span.setAttribute(`${PREFIX}.timed_out`, message.timedOut);
    if (message.replica !== undefined) span.setAttribute(`${PREFIX}.replica`, message.replica);
    if (message.onReplica !== undefined) {
      span.setAttribute(`${PREFIX}.on_replica`, message.onReplica);
      span.setAttribute(
        'db.client.connection.pool.name',
        poolName(message.dataSource, message.onReplica),
      );
    }
    this.finish(message, span, message.error);
  }

  private startSavepoint(message: SavepointMessage): void {
    if (!this.kinds.savepoints) return;
    const attributes: Attributes = {
      ...dbAttributes(message.db),
      [`${PREFIX}.data_source`]: message.dataSource,
    };
    const span = this.tracer().startSpan(
      'SAVEPOINT',
      { kind: SpanKind.CLIENT, attributes },
      this.parent(),
    );
    this.spans.set(message, span);
  }

  private endSavepoint(message: SavepointMessage): void {
    const span = this.spans.get(message);
    if (span === undefined) return;
    if (message.savepoint !== undefined) {
      span.updateName(`SAVEPOINT ${message.savepoint}`);
      span.setAttribute(`${PREFIX}.savepoint`, message.savepoint);
    }
    if (message.outcome !== undefined) {
      span.setAttribute(`${PREFIX}.outcome`, message.outcome);
      const released = message.outcome === 'released';
      span.setAttribute(
        'db.operation.name',
        released ? 'RELEASE SAVEPOINT' : 'ROLLBACK TO SAVEPOINT',
      );
    }
    this.finish(message, span, message.error);
  }

  private startCallback(message: CallbackMessage): void {
    if (!this.kinds.callbacks) return;
    const hook = message.name === 'onSessionStart' || message.name === 'beforeCommit';
    const attributes: Attributes = { [`${PREFIX}.callback`]: message.name };
    if (message.dataSource !== undefined) attributes[`${PREFIX}.data_source`] = message.dataSource;
    const name = `${hook ? 'hook' : 'callback'} ${message.name}`;
    const span = this.tracer().startSpan(
      name,
      { kind: SpanKind.INTERNAL, attributes },
      this.parent(),
    );
    this.spans.set(message, span);
  }

  private endCallback(message: CallbackMessage): void {
    const span = this.spans.get(message);
    if (span !== undefined) this.finish(message, span, message.error);
  }

  /** Ends the span of `message`, as failed when `error` is set. */
  private finish(message: object, span: Span, error: unknown): void {
    this.spans.delete(message);
    if (error !== undefined) {
      span.setAttribute('error.type', errorType(error));
      if (error instanceof Error) span.recordException(error);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    span.end();
  }

  /**
   * Subscribes `handlers` to a tracing channel. A block that fails synchronously publishes `end`
   * with `error` set and no `asyncEnd`: `end` finishes it then.
   */
  private on<M extends object>(
    name: string,
    handlers: { start: (message: M) => void; asyncEnd: (message: M) => void },
  ): void {
    const channel = tracingChannel<unknown, M>(name);
    const subscribers: Handlers<M> = {
      start: (message) => guard(() => handlers.start(message)),
      end: (message) => {
        if ((message as { error?: unknown }).error !== undefined && !this.asyncStarted.has(message))
          guard(() => handlers.asyncEnd(message));
      },
      asyncStart: (message) => void this.asyncStarted.add(message),
      asyncEnd: (message) => guard(() => handlers.asyncEnd(message)),
      error: () => undefined,
    };
    channel.subscribe(subscribers);
    this.subscriptions.push(() => channel.unsubscribe(subscribers));
  }

  private readonly asyncStarted = new WeakSet<object>();
}

/** Runs a subscriber's work; an error in it never reaches the traced code. */
function guard(work: () => void): void {
  try {
    work();
  } catch {
    // A tracer's failure must not change what the app does.
  }
}
