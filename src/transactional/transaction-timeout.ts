import { messages } from '../errors/messages.js';
import { TransactionTimeoutError } from '../errors/transaction-timeout.error.js';
import type { LazySession } from '../session/lazy-session.js';
import { isStatementTimeout } from './retryable-error.js';

/** What a timeout stops: the block's sessions (a block may use several data sources). */
export type TimeoutTarget = Pick<LazySession, 'dataSourceName' | 'abort'>;

/**
 * Runs `work` against a `timeout` (ms): when it expires first, the session is aborted (its
 * connection dropped, so the server rolls back and stops the statement) and the call rejects with
 * `TransactionTimeoutError`. A statement timeout from the server that wins the race counts the same.
 */
export async function raceTimeout<T>(
  work: () => Promise<T> | T,
  session: TimeoutTarget,
  timeout: number,
): Promise<T> {
  const error = new TransactionTimeoutError(messages.timeout(session.dataSourceName, timeout));
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(error);
      session.abort(error);
    }, timeout);
  });
  try {
    return await Promise.race([work(), expired]);
  } catch (cause) {
    // PostgreSQL's statement_timeout may win the race against the timer: same outcome.
    if (cause === error || !isStatementTimeout(cause)) throw cause;
    session.abort(error);
    throw new TransactionTimeoutError(error.message, { cause });
  } finally {
    clearTimeout(timer);
  }
}
