import { contextStorage } from '../context/context-storage.js';
import { markTransactional, runtimeOf } from '../context/instance-runtime.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { messages } from '../errors/messages.js';
import { ModuleNotInitializedError } from '../errors/module-not-initialized.error.js';
import type { TransactionOptions } from '../interfaces/transaction-options.interface.js';
import { resolveTransactionOptions } from '../typeorm-context.options.js';
import { copyMethodMetadata } from './copy-method-metadata.js';
import { Propagation } from './propagation.enum.js';
import { isTransactionalMethod, markTransactionalMethod } from './transactional-method.js';

/** Nest's lifecycle hooks: they run before (or after) the app can give a unit of work. */
const LIFECYCLE_HOOKS = new Set([
  'constructor',
  'onModuleInit',
  'onApplicationBootstrap',
  'onModuleDestroy',
  'beforeApplicationShutdown',
  'onApplicationShutdown',
]);

/**
 * On a prototype: the names of its methods decorated with `@Transactional()` of their own, which
 * a class-level one leaves alone even when another decorator wrapped them since (registered: a
 * second copy of the library sees it).
 */
const OWN_DECORATED = Symbol.for('nestjs-typeorm-context.transactional-methods');

/** Generator methods: a wrapper would turn what they return into a Promise. */
const GENERATORS = new Set(['GeneratorFunction', 'AsyncGeneratorFunction']);

/** Own properties of a function that belong to it as a function, not to whoever set them. */
const FUNCTION_OWN = new Set<PropertyKey>(['name', 'length', 'prototype', 'arguments', 'caller']);

/**
 * Runs the method atomically with the given propagation (`REQUIRED` by default), on the app that
 * created the instance (held by several apps: the app whose context the call runs in if it is one
 * of them, else the first one still running; created after startup, as request-scoped instances
 * are: the app whose context, or after-completion callback, the call runs in). Outside any
 * context it opens one for the call. `@Transactional(Propagation.REQUIRES_NEW)` is short for
 * `{ propagation }`. On a class, it applies to every method of the class's own prototype but
 * Nest's lifecycle hooks, getters and setters; a method's own `@Transactional()` wins. The method
 * keeps its name, own properties and every other decorator's metadata, in either decorator order;
 * it always returns a Promise.
 */
export function Transactional(
  options?: TransactionOptions | Propagation,
): MethodDecorator & ClassDecorator {
  const given = typeof options === 'string' ? shorthand(options) : options;
  const resolved = resolveTransactionOptions(given);
  const decorate = (target: object, key: string | symbol, descriptor: PropertyDescriptor) => {
    const original: unknown = descriptor.value;
    if (typeof original !== 'function') {
      throw new InvalidOptionError(
        messages.invalidOption(`@Transactional() on ${String(key)}`, original, 'a method'),
      );
    }
    const method = original as (...args: unknown[]) => unknown;
    const owner = typeof target === 'function' ? target.name : target.constructor.name;
    const named = { ...resolved, label: `${owner}.${String(key)}()` };
    // A plain function is cheaper to call than a Proxy; name, length and metadata are copied.
    const wrapped = function (this: unknown, ...args: unknown[]) {
      const app = contextStorage.getStore()?.runtime as SessionRuntime | undefined;
      const runtime = runtimeOf(this, app) ?? app;
      if (runtime === undefined) {
        // Always a Promise, even for an instance no app recorded.
        return Promise.reject(new ModuleNotInitializedError(messages.noRuntime(named.label)));
      }
      return runtime.transactions.runResolved(named, given, () => method.apply(this, args));
    };
    copyOwnProperties(original, wrapped);
    Object.defineProperty(wrapped, 'name', { value: method.name });
    Object.defineProperty(wrapped, 'length', { value: method.length });
    markTransactionalMethod(wrapped);
    copyMethodMetadata(original, wrapped);
    descriptor.value = wrapped;
    if (typeof target === 'object') markTransactional(target);
  };
  return ((target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (key !== undefined && descriptor !== undefined) {
      decorate(target, key, descriptor);
      ownDecorated(target, true).add(key);
      return;
    }
    const prototype = (target as { prototype: object }).prototype;
    const own = ownDecorated(prototype, false);
    for (const name of Object.getOwnPropertyNames(prototype)) {
      if (LIFECYCLE_HOOKS.has(name) || own?.has(name)) continue;
      const property = Object.getOwnPropertyDescriptor(prototype, name)!;
      const method: unknown = property.value;
      if (typeof method !== 'function' || isTransactionalMethod(method)) continue;
      if (GENERATORS.has(method.constructor.name)) continue;
      decorate(prototype, name, property);
      Object.defineProperty(prototype, name, property);
    }
  }) as MethodDecorator & ClassDecorator;
}

const PROPAGATIONS = Object.values(Propagation) as string[];

/** The names of `prototype`'s methods with a `@Transactional()` of their own (made if `make`). */
function ownDecorated(prototype: object, make: true): Set<string | symbol>;
function ownDecorated(prototype: object, make: false): Set<string | symbol> | undefined;
function ownDecorated(prototype: object, make: boolean): Set<string | symbol> | undefined {
  const holder = prototype as { [OWN_DECORATED]?: Set<string | symbol> };
  if (Object.hasOwn(holder, OWN_DECORATED)) return holder[OWN_DECORATED];
  if (!make) return undefined;
  const names = new Set<string | symbol>();
  Object.defineProperty(holder, OWN_DECORATED, { value: names });
  return names;
}

/** `{ propagation }` for `@Transactional(Propagation.X)`; any other string is refused. */
function shorthand(propagation: string): TransactionOptions {
  if (!PROPAGATIONS.includes(propagation)) {
    throw new InvalidOptionError(messages.transactionalShorthand(propagation));
  }
  return { propagation: propagation as Propagation };
}

/** Copies the own properties other decorators set on `from` (a flag, a name) to `to`. */
function copyOwnProperties(from: object, to: object): void {
  for (const key of Reflect.ownKeys(from)) {
    if (FUNCTION_OWN.has(key)) continue;
    Object.defineProperty(to, key, Object.getOwnPropertyDescriptor(from, key)!);
  }
}
