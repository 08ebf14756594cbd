/** PostgreSQL SQLSTATEs and MySQL/MariaDB error numbers worth re-running a transaction for. */
const RETRYABLE_CODES = new Set(['40001', '40P01', 'ER_LOCK_DEADLOCK']);
const RETRYABLE_ERRNOS = new Set([1213]);

/** Whether `error` is a serialization failure or a deadlock (possibly wrapped by TypeORM). */
export function isRetryableError(error: unknown): boolean {
  const wrapped = error as { driverError?: unknown } | undefined;
  const driverError = (wrapped?.driverError ?? error) as
    { code?: unknown; errno?: unknown } | undefined;
  return (
    RETRYABLE_CODES.has(String(driverError?.code)) ||
    RETRYABLE_ERRNOS.has(Number(driverError?.errno))
  );
}
