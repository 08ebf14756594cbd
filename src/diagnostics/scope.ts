import { contextStorage } from '../context/context-storage.js';
import type { UnitMessage } from './channels.js';
import { unitOf } from './message-unit.js';

/**
 * What a tracer (the `opentelemetry` subpath) makes of a traced message: `run()` runs work inside
 * it (OpenTelemetry: with the message's span active), so that what the work does itself, a
 * driver's query spans included, lands under it.
 */
export interface TraceScope {
  /** Runs `fn` inside what the tracer made of `message` (or as it is, when it made nothing). */
  run<T>(message: object, fn: () => T): T;
  /** What is current where a unit of work begins (OpenTelemetry: the active context), for its span later. */
  capture(): unknown;
}

/**
 * The tracers' scopes, in the order they were added; the last one is used. One list per process,
 * shared by an ESM and a CommonJS copy of the library.
 */
const scopes = ((globalThis as Record<symbol, unknown>)[
  Symbol.for('nestjs-typeorm-context.trace-scopes')
] ??= []) as TraceScope[];

/** Adds a tracer's scope (it is used until removed, or until another is added). Internal. */
export function addTraceScope(scope: TraceScope): void {
  removeTraceScope(scope);
  scopes.push(scope);
}

/** Removes a tracer's scope: the one added before it, if any, is used again. Internal. */
export function removeTraceScope(scope: TraceScope): void {
  const at = scopes.indexOf(scope);
  if (at >= 0) scopes.splice(at, 1);
}

/** The scope in use, if a tracer added one. Internal. */
export function traceScope(): TraceScope | undefined {
  return scopes.length === 0 ? undefined : scopes[scopes.length - 1];
}

/** Runs `fn` inside the tracer's scope of `message`; as it is when no tracer is set. */
export function inScope<T>(message: object, fn: () => T): T {
  const scope = traceScope();
  return scope === undefined ? fn() : scope.run(message, fn);
}

/** What is current here for the tracer (see `TraceScope.capture()`); undefined without one. */
export function captureOrigin(): unknown {
  return scopes.length === 0 ? undefined : scopes[scopes.length - 1]!.capture();
}

/** Where the unit of `message` began, if a tracer captured it then. Internal: for the `opentelemetry` subpath. */
export function originOf(message: UnitMessage): unknown {
  return (unitOf(message) as { readonly origin?: unknown } | undefined)?.origin;
}

/**
 * The message of the traced unit of work the calling code runs in (its own, or the nearest one
 * it runs in), when that unit published its start. Internal: for the `opentelemetry` subpath.
 */
export function currentUnitMessage(): UnitMessage | undefined {
  return contextStorage.getStore()?.unit?.tracedMessage;
}
