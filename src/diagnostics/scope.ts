import { contextStorage } from '../context/context-storage.js';
import type { UnitMessage } from './channels.js';

/**
 * What a tracer (the `opentelemetry` subpath) makes of a traced message: `run()` runs work inside
 * it (OpenTelemetry: with the message's span active), so that what the work does itself, a
 * driver's query spans included, lands under it.
 */
export interface TraceScope {
  /** Runs `fn` inside what the tracer made of `message` (or as it is, when it made nothing). */
  run<T>(message: object, fn: () => T): T;
}

/** One holder per process, shared by an ESM and a CommonJS copy of the library. */
const holder = ((globalThis as Record<symbol, unknown>)[
  Symbol.for('nestjs-typeorm-context.trace-scope')
] ??= { scope: undefined }) as { scope: TraceScope | undefined };

/** Sets the tracer's scope (`undefined`: none). Internal: for the `opentelemetry` subpath. */
export function setTraceScope(scope: TraceScope | undefined): void {
  holder.scope = scope;
}

/** The tracer's scope, if one is set. Internal. */
export function traceScope(): TraceScope | undefined {
  return holder.scope;
}

/** Runs `fn` inside the tracer's scope of `message`; as it is when no tracer is set. */
export function inScope<T>(message: object, fn: () => T): T {
  const scope = holder.scope;
  return scope === undefined ? fn() : scope.run(message, fn);
}

/**
 * The message of the traced unit of work the calling code runs in (its own, or the nearest one
 * it runs in), when that unit published its start. Internal: for the `opentelemetry` subpath.
 */
export function currentUnitMessage(): UnitMessage | undefined {
  return contextStorage.getStore()?.unit?.tracedMessage;
}
