import { contextStorage } from '../context/context-storage.js';
import { markTransactional, runtimeOf } from '../context/instance-runtime.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { messages } from '../errors/messages.js';
import { ModuleNotInitializedError } from '../errors/module-not-initialized.error.js';
import type { TransactionOptions } from '../interfaces/transaction-options.interface.js';
import { resolveTransactionOptions } from '../typeorm-context.options.js';
import { copyMethodMetadata } from './copy-method-metadata.js';
import { markTransactionalMethod } from './transactional-method.js';

/**
 * Runs the method atomically with the given propagation (`REQUIRED` by default), on the app that
 * created the instance (held by several apps: the app whose context the call runs in if it is one
 * of them, else the first one still running; created after startup, as request-scoped instances
 * are: the app whose context, or after-completion callback, the call runs in). Outside any context it opens one for the call. The method keeps its name and
 * every other decorator's metadata, in either decorator order; it always returns a Promise.
 */
export function Transactional(options?: TransactionOptions): MethodDecorator {
  const resolved = resolveTransactionOptions(options);
  return (target, key, descriptor: PropertyDescriptor) => {
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
      return runtime.transactions.runResolved(named, options, () => method.apply(this, args));
    };
    Object.defineProperty(wrapped, 'name', { value: method.name });
    Object.defineProperty(wrapped, 'length', { value: method.length });
    markTransactionalMethod(wrapped);
    copyMethodMetadata(original, wrapped);
    descriptor.value = wrapped;
    if (typeof target === 'object') markTransactional(target);
  };
}
