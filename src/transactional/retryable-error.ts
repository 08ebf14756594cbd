import { CallbackError } from '../errors/callback.error.js';
import { PartlyCommittedError } from '../errors/partly-committed.error.js';

/** PostgreSQL SQLSTATEs and MySQL/MariaDB error numbers worth re-running a transaction for. */
const RETRYABLE_CODES = new Set(['40001', '40P01', 'ER_LOCK_DEADLOCK']);
const RETRYABLE_ERRNOS = new Set([1213]);

/** The driver's own error inside a TypeORM or library error (its `driverError` or `cause`). */
function driverErrors(error: unknown): Array<{ code?: unknown; errno?: unknown }> {
  const found: Array<{ code?: unknown; errno?: unknown }> = [];
  for (let next = error, depth = 0; next && typeof next === 'object' && depth < 4; depth++) {
    const current = next as { driverError?: unknown; cause?: unknown };
    found.push(current as { code?: unknown; errno?: unknown });
    next = current.driverError ?? current.cause;
  }
  return found;
}

/**
 * Whether `error` is a serialization failure or a deadlock, possibly wrapped by TypeORM or by a
 * `TransactionAbortedError` (a caught deadlock that the server answered by rolling back). Never
 * a `CallbackError` or `PartlyCommittedError`, whatever their cause: their commit stands.
 */
export function isRetryableError(error: unknown): boolean {
  const chain = driverErrors(error);
  if (chain.some((link) => link instanceof CallbackError || link instanceof PartlyCommittedError))
    return false;
  return chain.some(
    (driver) =>
      RETRYABLE_CODES.has(String(driver.code)) || RETRYABLE_ERRNOS.has(Number(driver.errno)),
  );
}

/** Whether `error` is PostgreSQL cancelling a statement for `statement_timeout` (57014). */
export function isStatementTimeout(error: unknown): boolean {
  return driverErrors(error).some((driver) => driver.code === '57014');
}
