import type { ModulesContainer } from '@nestjs/core';
import type { SessionRuntime } from './session-runtime.js';

/**
 * Which app's runtime an instance with `@Transactional()` methods belongs to. The decorator marks
 * the class; at startup each app's runtime binds itself to the instances its container created,
 * as a non-enumerable property of each instance: per instance, never a process-wide "current app".
 * Registered symbols, so that a CommonJS and an ESM copy of the library agree.
 */
const TRANSACTIONAL = Symbol.for('nestjs-typeorm-context.transactional');
const RUNTIME = Symbol.for('nestjs-typeorm-context.runtime');

/** Marks `prototype` (a class's) as having `@Transactional()` methods. */
export function markTransactional(prototype: object): void {
  if (Object.hasOwn(prototype, TRANSACTIONAL)) return;
  Object.defineProperty(prototype, TRANSACTIONAL, { value: true });
}

/** The runtime of the app that created `instance`, if one bound it. */
export function runtimeOf(instance: unknown): SessionRuntime | undefined {
  if (typeof instance !== 'object' || instance === null) return undefined;
  return (instance as { [RUNTIME]?: SessionRuntime })[RUNTIME];
}

/**
 * Binds `runtime` to every instance with `@Transactional()` methods that the app's container
 * holds: providers, controllers, enhancers, middleware, and the transient instances of each.
 * Request-scoped instances are created later, inside a request: they run on its context's runtime.
 */
export function bindInstances(modules: ModulesContainer, runtime: SessionRuntime): void {
  for (const module of modules.values()) {
    const wrappers = [
      module.providers,
      module.controllers,
      module.injectables,
      module.middlewares,
    ].flatMap((map) => [...map.values()]);
    for (const wrapper of wrappers) {
      bind(wrapper.instance, runtime);
      if (!wrapper.isTransient) continue;
      for (const transient of wrapper.getStaticTransientInstances()) {
        bind(transient?.instance, runtime);
      }
    }
  }
}

function bind(instance: unknown, runtime: SessionRuntime): void {
  if (typeof instance !== 'object' || instance === null) return;
  const marked = (instance as { [TRANSACTIONAL]?: boolean })[TRANSACTIONAL] === true;
  if (!marked || !Object.isExtensible(instance)) return;
  Object.defineProperty(instance, RUNTIME, { value: runtime, configurable: true });
}
