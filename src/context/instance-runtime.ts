import type { ModulesContainer } from '@nestjs/core';
import type { SessionRuntime } from './session-runtime.js';

/**
 * Which app's runtime an instance with `@Transactional()` methods (or an `AutoCommitInterceptor`)
 * belongs to. The decorator marks the class; at startup each app's runtime records itself for the
 * instances its container holds, in a WeakMap keyed by instance (a frozen instance is recorded
 * too): per instance, never a process-wide "current app". An instance several apps hold (one
 * object given to both) keeps every app that recorded it, in order. Registered symbols, so that
 * a CommonJS and an ESM copy of the library agree.
 */
const TRANSACTIONAL = Symbol.for('nestjs-typeorm-context.transactional');
const RECORDS = Symbol.for('nestjs-typeorm-context.instance-runtimes');

/** The apps that recorded each instance, in the order they did (one map per process, shared by copies). */
const records: WeakMap<object, SessionRuntime[]> = ((globalThis as Record<symbol, unknown>)[
  RECORDS
] ??= new WeakMap()) as WeakMap<object, SessionRuntime[]>;

/** Marks `prototype` (a class's) as having `@Transactional()` methods. */
export function markTransactional(prototype: object): void {
  if (Object.hasOwn(prototype, TRANSACTIONAL)) return;
  Object.defineProperty(prototype, TRANSACTIONAL, { value: true });
}

/**
 * The runtime `instance` runs on, among the apps that recorded it: `preferred` (the app of the
 * context the call runs in) if it is one of them, else the first one still running.
 */
export function runtimeOf(instance: unknown, preferred?: object): SessionRuntime | undefined {
  if (typeof instance !== 'object' || instance === null) return undefined;
  const runtimes = records.get(instance);
  if (runtimes === undefined) return undefined;
  if (runtimes.length === 1) return runtimes[0];
  return (
    runtimes.find((runtime) => runtime === preferred) ??
    runtimes.find((runtime) => runtime.running) ??
    runtimes[0]
  );
}

/**
 * Records `runtime` for every marked instance the app's container holds: providers, controllers,
 * enhancers, middleware, and the transient instances of each, plus `extra` ones (the global
 * interceptors `app.useGlobalInterceptors()` was given). Request-scoped instances are created
 * later, inside a request: they run on its context's runtime.
 */
export function recordInstances(
  modules: ModulesContainer | undefined,
  runtime: SessionRuntime,
  extra: Iterable<unknown> = [],
): void {
  for (const module of modules?.values() ?? []) {
    const wrappers = [
      module.providers,
      module.controllers,
      module.injectables,
      module.middlewares,
    ].flatMap((map) => [...map.values()]);
    for (const wrapper of wrappers) {
      record(wrapper.instance, runtime);
      if (!wrapper.isTransient) continue;
      for (const transient of wrapper.getStaticTransientInstances()) {
        record(transient?.instance, runtime);
      }
    }
  }
  for (const instance of extra) record(instance, runtime);
}

function record(instance: unknown, runtime: SessionRuntime): void {
  if (typeof instance !== 'object' || instance === null) return;
  if ((instance as { [TRANSACTIONAL]?: boolean })[TRANSACTIONAL] !== true) return;
  const runtimes = records.get(instance);
  if (runtimes === undefined) records.set(instance, [runtime]);
  else if (!runtimes.includes(runtime)) runtimes.push(runtime);
}
