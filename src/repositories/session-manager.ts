import { EntityManager } from 'typeorm';
import type { SessionRuntime } from '../context/session-runtime.js';

/** What Nest asks every provider for: never a manager's member, never resolved to a session. */
const PROBES = new Set<PropertyKey>([
  'then',
  'onModuleInit',
  'onApplicationBootstrap',
  'onModuleDestroy',
  'beforeApplicationShutdown',
  'onApplicationShutdown',
  // The mark of instances with @Transactional() methods, read for every provider at startup
  // (also when the data source is initialized after app.init()).
  Symbol.for('nestjs-typeorm-context.transactional'),
]);

/**
 * An `EntityManager` that forwards every property access to the manager current at the call
 * (the context's session; outside any unit, `SessionRuntime.manager()` says which).
 */
export function sessionManager(runtime: SessionRuntime, name: string): EntityManager {
  const blank = Object.create(EntityManager.prototype) as EntityManager;
  return new Proxy(blank, {
    get(target, key) {
      // Nest probes providers for `then` and lifecycle hooks, also before the data sources are
      // ready and after the module shut down: those never reach a session.
      if (PROBES.has(key) || !runtime.ready) return Reflect.get(target, key) as unknown;
      const manager = runtime.manager(name);
      const value = Reflect.get(manager, key, manager) as unknown;
      return typeof value === 'function' ? (value as () => unknown).bind(manager) : value;
    },
    set: (_target, key, value) => Reflect.set(runtime.manager(name), key, value),
    has: (target, key) => (runtime.ready ? key in runtime.manager(name) : key in target),
  });
}
