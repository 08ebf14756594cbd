import type { ModuleInstrumentation } from '../interfaces/typeorm-context-options.interface.js';

/**
 * The apps running with each instrumentation given to `forRoot({ instrumentations })`: one
 * instance given to several apps of a process stays enabled until the last of them shuts down.
 * One map per process, shared by an ESM and a CommonJS copy of the library.
 */
const users = ((globalThis as Record<symbol, unknown>)[
  Symbol.for('nestjs-typeorm-context.instrumentation-users')
] ??= new WeakMap()) as WeakMap<ModuleInstrumentation, Set<object>>;

/** Enables `instrumentations` for `app` (from its start). */
export function enableFor(app: object, instrumentations: readonly ModuleInstrumentation[]): void {
  for (const instrumentation of instrumentations) {
    let apps = users.get(instrumentation);
    if (apps === undefined) users.set(instrumentation, (apps = new Set()));
    apps.add(app);
    instrumentation.enable();
  }
}

/** `app` shut down: disables each of `instrumentations` no other running app was given. */
export function disableFor(app: object, instrumentations: readonly ModuleInstrumentation[]): void {
  for (const instrumentation of instrumentations) {
    const apps = users.get(instrumentation);
    if (apps === undefined || !apps.delete(app)) continue;
    if (apps.size === 0) instrumentation.disable();
  }
}
