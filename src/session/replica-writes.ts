import { messages } from '../errors/messages.js';
import { ReplicaWriteError } from '../errors/replica-write.error.js';

/**
 * The statements TypeORM's write paths send (insert, update, delete, save, remove, soft delete,
 * upsert, clear, schema changes), after any leading comments (`QueryBuilder.comment()`).
 */
const WRITE =
  /^\s*(?:\/\*[\s\S]*?\*\/\s*|--[^\n]*\n\s*)*(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|CREATE|ALTER|DROP)\b/i;

/** PostgreSQL `read_only_sql_transaction`: a write (or lock) refused by a read-only transaction. */
const READ_ONLY_VIOLATION = '25006';

/**
 * The error a statement of a transaction that runs on a replica gets instead of being sent, when
 * it is one of TypeORM's writes; undefined for everything else (reads, and raw SQL the server
 * judges: see `replicaRefusal`).
 */
export function writeOnReplica(
  sql: unknown,
  dataSource: string,
  label: string | undefined,
): ReplicaWriteError | undefined {
  if (typeof sql !== 'string') return undefined;
  const write = WRITE.exec(sql);
  if (write === null) return undefined;
  const statement = write[1]!.toUpperCase();
  return new ReplicaWriteError(messages.replicaWrite(dataSource, label ?? 'a session', statement));
}

/** The clear error for the server's refusal of a write on a replica (raw SQL, a function, a lock). */
export function replicaRefusal(
  error: unknown,
  dataSource: string,
  label: string | undefined,
): ReplicaWriteError | undefined {
  const { driverError, code } = (error ?? {}) as {
    driverError?: { code?: unknown };
    code?: unknown;
  };
  if ((driverError?.code ?? code) !== READ_ONLY_VIOLATION) return undefined;
  const what = (error as { message?: unknown }).message;
  const named = typeof what === 'string' ? /cannot execute (.+?) in a read-only/.exec(what) : null;
  const statement = named?.[1] ?? 'A write';
  return new ReplicaWriteError(messages.replicaWrite(dataSource, label ?? 'a session', statement), {
    cause: error,
  });
}
