import { Injectable } from '@nestjs/common';
import { SessionRuntime } from '../context/session-runtime.js';
import type {
  SessionCallback,
  SessionOptions,
  TransactionOptions,
} from '../interfaces/transaction-options.interface.js';
import { Propagation } from '../transactional/propagation.enum.js';
import { checkSessionOptions, DEFAULT_DATA_SOURCE } from '../typeorm-context.options.js';
import { decodeToken } from '../context/consistency-token.js';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { messages } from '../errors/messages.js';
import { checkShape } from '../option-checks.js';
import { runInNewUnit } from './new-unit.js';
import { Session } from './session.js';

/** Options of `sessionFactory.runInNewContext()`. */
export interface NewContextOptions {
  /** A consistency token the new unit's reads honour (see `sessionContext.consistentWith()`). */
  consistencyToken?: string;
}

/** Independent sessions, each on its own connection: the tool for parallel work. */
@Injectable()
export class SessionFactory {
  constructor(private readonly runtime: SessionRuntime) {}

  /**
   * Runs `fn` in a fresh context with sessions of its own: committed when `fn` resolves, rolled
   * back if it rejects, always released. Works inside or outside any other context (inside one,
   * its reads see what that one wrote, and its commits move that one's consistency token).
   * `consistencyToken`: its reads see at least what the token names (see
   * `sessionContext.consistentWith()`).
   */
  runInNewContext<T>(fn: () => Promise<T> | T, options?: NewContextOptions): Promise<T> {
    if (options === undefined) return runInNewUnit(this.runtime, fn, 'context');
    let positions: Map<string, bigint> | undefined;
    try {
      checkShape(options, ['consistencyToken'], 'runInNewContext() options');
      const token = options?.consistencyToken;
      if (token !== undefined) {
        positions = decodeToken(token);
        if (positions === undefined) {
          throw new InvalidOptionError(messages.invalidConsistencyToken(token));
        }
      }
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return runInNewUnit(this.runtime, fn, 'context', positions);
  }

  /** A new independent session (sync and lazy); the caller commits and closes it. */
  open(options: SessionOptions = {}): Session {
    checkSessionOptions(options);
    const { dataSource = DEFAULT_DATA_SOURCE, isolationLevel, readOnly, replica } = options;
    const begin = { isolationLevel, readOnly, replica, label: 'sessionFactory.open()' };
    return new Session(this.runtime.createSession(dataSource, 'factory', begin));
  }

  /**
   * Runs `fn` on a new independent session (`Propagation.REQUIRES_NEW` by default), committed
   * when `fn` resolves and rolled back if it rejects. Inside `fn` it is the current session.
   */
  atomic<T>(fn: SessionCallback<T>, options?: TransactionOptions): Promise<T> {
    return this.runtime.transactions.run(
      options,
      fn,
      Propagation.REQUIRES_NEW,
      'sessionFactory.atomic()',
    );
  }
}
