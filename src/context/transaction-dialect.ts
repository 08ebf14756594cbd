import type { QueryRunner } from 'typeorm';
import { messages } from '../errors/messages.js';
import { UnsupportedDriverError } from '../errors/unsupported-driver.error.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';

/** How a transaction begins: isolation level and access mode. */
export interface BeginOptions {
  isolationLevel?: IsolationLevel;
  readOnly?: boolean;
  /** Milliseconds after which PostgreSQL cancels a statement of this transaction. */
  timeout?: number;
}

const POSTGRES = new Set(['postgres', 'cockroachdb', 'aurora-postgres']);
const MYSQL = new Set(['mysql', 'mariadb', 'aurora-mysql']);

/** Throws at startup for drivers whose transactions the library cannot drive. */
export function assertSupportedDriver(type: string): void {
  if (!POSTGRES.has(type) && !MYSQL.has(type)) {
    throw new UnsupportedDriverError(messages.unsupportedDriver(type));
  }
}

/** The statements that begin a transaction on `type`, in order (one round trip on PostgreSQL). */
export function beginStatements(type: string, options: BeginOptions): string[] {
  const { isolationLevel, readOnly, timeout } = options;
  if (POSTGRES.has(type)) {
    const modes = [isolationLevel && `ISOLATION LEVEL ${isolationLevel}`, readOnly && 'READ ONLY'];
    const tail = modes.filter(Boolean).join(', ');
    const start = tail ? `START TRANSACTION ${tail}` : 'START TRANSACTION';
    return timeout ? [start, `SET LOCAL statement_timeout = ${Math.ceil(timeout)}`] : [start];
  }
  const start = readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION';
  return isolationLevel ? [`SET TRANSACTION ISOLATION LEVEL ${isolationLevel}`, start] : [start];
}

/** Hands a connection whose state is unknown back so that the pool destroys it. */
export async function discardConnection(runner: QueryRunner, error: unknown): Promise<void> {
  const internals = runner as unknown as {
    releasePostgresConnection?: (err: unknown) => Promise<void>;
    databaseConnection?: { destroy?: () => void };
    isReleased: boolean;
  };
  if (internals.releasePostgresConnection) {
    await internals.releasePostgresConnection.call(
      runner,
      error instanceof Error ? error : new Error(String(error)),
    );
    return;
  }
  internals.databaseConnection?.destroy?.();
  internals.isReleased = true;
}
