/** The classes of requests the soak sends, and what the database may hold after each. */

/** What the client saw. */
export interface Outcome {
  status: number;
  /** The client went away on purpose (the `abort` class). */
  aborted?: boolean;
  /** The server did not answer in time. */
  unanswered?: boolean;
  /** The name of the error the server answered with. */
  error?: string;
}

/** A row of `soak_row`. */
export interface Row {
  request: string;
  kind: string;
}

interface RequestClass {
  route: string;
  /** The client destroys the request after this many ms. */
  abortAfter?: number;
  /** Whether `kinds` are exactly what this request writes when it commits. */
  complete(kinds: string[], tenant: string): boolean;
  /** Rows a request that failed may leave: those of independent sessions it committed. */
  leftOnFailure?: (kinds: string[]) => boolean;
  /** How many rows a request that succeeded writes. */
  rows: number;
}

const ok = (status: number) => status >= 200 && status < 300;
/** The server said the COMMIT's outcome is unknown (its connection died with it on the way). */
const unknown = (status: number) => status === 503;
const count = (kinds: string[], kind: string) => kinds.filter((k) => k === kind).length;
const only = (kinds: string[], kind: string, n: number) =>
  kinds.length === n && count(kinds, kind) === n;
/** A class whose handler always fails: it never commits anything. */
const never = () => false;

/** The classes, in the order requests cycle through them. */
export const CLASSES: RequestClass[] = [
  { route: 'ok', rows: 1, complete: (kinds) => only(kinds, 'ok', 1) },
  { route: 'throw', rows: 0, complete: never },
  { route: 'deferred', rows: 0, complete: never },
  { route: 'abort', rows: 2, abortAfter: 10, complete: (kinds) => only(kinds, 'abort', 2) },
  { route: 'killed', rows: 0, complete: never },
  {
    route: 'exhaust',
    rows: 4,
    complete: (kinds) => kinds.length === 4 && count(kinds, 'exhaust') === 1,
    leftOnFailure: (kinds) => count(kinds, 'exhaust') === 0,
  },
  {
    route: 'tenant',
    rows: 1,
    complete: (kinds, tenant) =>
      kinds.length === 1 && kinds[0] === `tenant:${tenant}:${tenant}:${tenant}`,
  },
  {
    route: 'outbox',
    rows: 2,
    complete: (kinds) =>
      kinds.length === 2 &&
      count(kinds, 'outbox-order') === 1 &&
      count(kinds, 'outbox-message') === 1,
    // A failed callback (callbackErrors: 'throw') answers 500 after its order committed.
    leftOnFailure: (kinds) => only(kinds, 'outbox-order', 1),
  },
];

/** What is wrong with the rows one request left, given what its client was told; undefined if nothing. */
function verdict(
  c: RequestClass,
  kinds: string[],
  outcome: Outcome,
  tenant: string,
): string | undefined {
  if (outcome.unanswered) return 'no answer';
  const complete = c.complete(kinds, tenant);
  const none = kinds.length === 0 || (c.leftOnFailure?.(kinds) ?? false);
  if (ok(outcome.status)) return complete ? undefined : 'lost write';
  // Committed, and the client was told it might be: the COMMIT's outcome was unknown, it went
  // away itself, or a callback failed after the commit (callbackErrors: 'throw').
  if (
    complete &&
    (unknown(outcome.status) || outcome.aborted || outcome.error === 'CallbackError')
  ) {
    return undefined;
  }
  if (none) return undefined;
  if (kinds.some((kind) => kind.startsWith('tenant:')))
    return `tenant mismatch (${kinds.join(', ')})`;
  return complete ? 'write of a failed request' : 'half a transaction';
}

/** Compares every request's outcome with its rows; a table per class and the violations. */
export function judge(
  outcomes: Map<string, { kind: string; tenant: string; outcome: Outcome }>,
  rows: Row[],
): { table: string; violations: number } {
  const byRequest = new Map<string, string[]>();
  for (const row of rows)
    byRequest.set(row.request, [...(byRequest.get(row.request) ?? []), row.kind]);
  const lines = new Map<
    string,
    {
      sent: number;
      ok: number;
      failed: number;
      expected: number;
      kept: number;
      left: number;
      bad: Map<string, number>;
    }
  >();
  let violations = 0;
  const examples: string[] = [];
  for (const [id, { kind, tenant, outcome }] of outcomes) {
    const line = lines.get(kind) ?? {
      sent: 0,
      ok: 0,
      failed: 0,
      expected: 0,
      kept: 0,
      left: 0,
      bad: new Map(),
    };
    const requestClass = CLASSES.find((c) => c.route === kind)!;
    lines.set(kind, line);
    const kinds = byRequest.get(id) ?? [];
    byRequest.delete(id);
    line.sent++;
    if (ok(outcome.status)) {
      line.ok++;
      line.expected += requestClass.rows;
      line.kept += kinds.length;
    } else {
      line.failed++;
      line.left += kinds.length;
    }
    const problem = verdict(requestClass, kinds, outcome, tenant);
    if (problem) {
      if (violations < 10)
        examples.push(
          `${id} ${kind} ${outcome.status} ${outcome.error ?? ''}: ${problem} [${kinds.join(', ')}]`,
        );
      violations++;
      line.bad.set(problem, (line.bad.get(problem) ?? 0) + 1);
    }
  }
  const foreign = [...byRequest.values()].reduce((sum, kinds) => sum + kinds.length, 0);
  violations += foreign;
  const table = [
    '| class | sent | 2xx | errors | rows expected (2xx) | rows persisted (2xx) | rows of failed requests | wrong |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...[...lines].map(
      ([kind, l]) =>
        `| ${kind} | ${l.sent} | ${l.ok} | ${l.failed} | ${l.expected} | ${l.kept} | ${l.left} | ${[...l.bad].map(([p, n]) => `${n} ${p}`).join(', ') || '0'} |`,
    ),
    `| (rows of no request) | | | | | | ${foreign} | ${foreign ? `${foreign} foreign writes` : '0'} |`,
    ...(examples.length ? ['', 'First violations:', ...examples.map((line) => `- ${line}`)] : []),
  ].join('\n');
  return { table, violations };
}
