import type { DataSource } from 'typeorm';

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Races `work` against a timer: rejects with `hung: <what>` when it has not settled within `ms`.
 * (A timer can only fire if the event loop still turns; see pool-wait-leak for the one case where
 * the code under test can spin it.)
 */
export async function within<T>(work: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The settled outcome of `work` as a value: what it resolved to, or the error it rejected with. */
export async function outcome<T>(work: Promise<T>): Promise<{ ok: true; value: T } | Failure> {
  try {
    return { ok: true, value: await work };
  } catch (error) {
    const { name, message } = (error ?? {}) as Error;
    return { ok: false, name, message, error };
  }
}

/** A rejected outcome. */
export interface Failure {
  ok: false;
  name: string;
  message: string;
  error: unknown;
}

/** `outcome()` raced against a timer. */
export function settle<T>(work: Promise<T>, what: string, ms = 5000) {
  return within(outcome(work), what, ms);
}

/** Rows of `example` (counted on the data source's own pool). */
export async function texts(dataSource: DataSource): Promise<string[]> {
  const rows: Array<{ text: string }> = await dataSource.query('SELECT text FROM example');
  return rows.map((row) => row.text).sort();
}

/** An ordered event log shared by the blocks of a scenario. */
export class EventLog {
  readonly events: string[] = [];

  push(event: string): void {
    this.events.push(event);
  }

  /** Index of `event` in the log (-1 when it never happened). */
  at(event: string): number {
    return this.events.indexOf(event);
  }
}

/** Asserts that an `outcome()` resolved, showing the error in the failure message otherwise. */
export function expectResolved(result: { ok: boolean; name?: string; message?: string }): void {
  expect(result.ok ? 'resolved' : `rejected with ${result.name}: ${result.message}`).toBe(
    'resolved',
  );
}
