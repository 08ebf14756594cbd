import { SessionRuntime } from '../context/session-runtime.js';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { messages } from '../errors/messages.js';
import type { TransactionOptions } from '../interfaces/transaction-options.interface.js';
import { resolveTransactionOptions } from '../typeorm-context.options.js';
import { copyMethodMetadata } from './copy-method-metadata.js';

/**
 * Runs the method atomically with the given propagation (`REQUIRED` by default). Outside any
 * context it opens one for the call. The method keeps its name and every other decorator's
 * metadata, in either decorator order; it always returns a Promise.
 */
export function Transactional(options?: TransactionOptions): MethodDecorator {
  resolveTransactionOptions(options);
  return (_target, key, descriptor: PropertyDescriptor) => {
    const original: unknown = descriptor.value;
    if (typeof original !== 'function') {
      throw new InvalidOptionError(
        messages.invalidOption(`@Transactional() on ${String(key)}`, original, 'a method'),
      );
    }
    const wrapped = new Proxy(original, {
      apply: (target, thisArg, args) =>
        SessionRuntime.get().transactions.run(options, () => Reflect.apply(target, thisArg, args)),
    });
    copyMethodMetadata(original, wrapped);
    descriptor.value = wrapped;
  };
}
