import { Injectable } from '@nestjs/common';
import { SessionRuntime } from '../context/session-runtime.js';
import type {
  SessionCallback,
  SessionOptions,
  TransactionOptions,
} from '../interfaces/transaction-options.interface.js';
import { Propagation } from '../transactional/propagation.enum.js';
import { checkSessionOptions, DEFAULT_DATA_SOURCE } from '../typeorm-context.options.js';
import { runInNewUnit } from './new-unit.js';
import { Session } from './session.js';

/** Independent sessions, each on its own connection: the tool for parallel work. */
@Injectable()
export class SessionFactory {
  constructor(private readonly runtime: SessionRuntime) {}

  /**
   * Runs `fn` in a fresh context with sessions of its own: committed when `fn` resolves, rolled
   * back if it rejects, always released. Works inside or outside any other context.
   */
  runInNewContext<T>(fn: () => Promise<T> | T): Promise<T> {
    return runInNewUnit(this.runtime, fn, 'context');
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
