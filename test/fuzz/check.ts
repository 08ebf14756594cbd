/**
 * Runs one program against a fuzz app and checks the invariants of issue 18 in the database: a
 * row exists iff its unit and blocks reported success; each transaction's rows share one
 * transaction and connection, never another's; every unit and block reported what the model
 * predicts (allowing a pool timeout where the pool can run out); nothing hangs; nothing is checked
 * out or idle in transaction afterwards; no unhandled rejection; every error is the library's or
 * the user's own.
 */
import { FuzzTracing } from './tracing.js';
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DataSource, QueryFailedError } from 'typeorm';
import { TypeOrmContextError } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { type Engine, checkedOut, idleInTransaction } from '../support/engines.js';
import { ACQUIRE_TIMEOUT, type FuzzApp } from './fuzz-app.js';
import { HttpFailure, type Row, UserError } from './interpreter.js';
import { type Program, type Report, type Verdict, demand, judge } from './model.js';

/** How long one program may take before it counts as hung. */
const BOUND_MS = 20_000;

/** Errors the environment may cause (a full pool), rather than the program. */
const POOL = new Set(['ConnectionAcquireTimeoutError']);

/**
 * ... and a killed server connection: also at the COMMIT of an owned block part of which (an
 * inner REQUIRES_NEW block) had committed, which then rejects with `PartlyCommittedError`.
 */
const KILLED = new Set([
  ...POOL,
  'ConnectionLostError',
  'CommitOutcomeUnknownError',
  'PartlyCommittedError:ConnectionLostError',
  'PartlyCommittedError:CommitOutcomeUnknownError',
]);

/** Outcomes of a COMMIT whose connection died on the way: it may have committed or not. */
const UNKNOWN = new Set([
  'CommitOutcomeUnknownError',
  'PartlyCommittedError:CommitOutcomeUnknownError',
]);

/** Kills the `victim`-th server connection of the app's database (by id) from `admin`. */
async function kill(engine: Engine, admin: DataSource, victim: number): Promise<void> {
  const ids: Array<{ id: number | string }> = await admin.query(
    engine.name === 'postgres'
      ? `SELECT pid AS id FROM pg_stat_activity WHERE datname = current_database()
           AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY pid`
      : 'SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID() ORDER BY id',
  );
  if (ids.length === 0) return;
  const id = Number(ids[victim % ids.length]!.id);
  await (engine.name === 'postgres'
    ? // Waits until the backend is gone: the next program must not get a connection still dying.
      admin.query('SELECT pg_terminate_backend($1, 5000)', [id])
    : admin.query(`KILL ${id}`).catch(() => undefined)); // it may have ended meanwhile
}

/** Rejects with `what` when `work` has not settled within `ms`. */
export async function bounded<T>(work: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until no connection is checked out and none is idle in transaction. */
async function clean(
  engine: Engine,
  fuzz: FuzzApp,
  admin: DataSource,
): Promise<string | undefined> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const out = checkedOut(fuzz.dataSource);
    // Asked on a connection of its own: the app's pool may hold a connection a program killed.
    const idle = await idleInTransaction(engine, admin);
    if (out === 0 && idle === 0) return undefined;
    if (Date.now() > deadline)
      return `${out} connection(s) checked out, ${idle} idle in transaction`;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The rows of the table, read through `source` within a bound. */
function readRows(source: DataSource): Promise<Row[]> {
  return bounded(
    source.query('SELECT tag, txid, backend, in_tx FROM fuzz_row'),
    'reading the table',
    BOUND_MS,
  );
}

/** Whether an error is one a program may see: the library's, the user's, or the bad statement's. */
function allowedError(error: unknown): boolean {
  if (
    error instanceof TypeOrmContextError ||
    error instanceof UserError ||
    error instanceof HttpFailure
  )
    return true;
  if (error instanceof QueryFailedError)
    return /fuzz_missing_table|foreign key|fuzz_row_commit_fail_fkey|current transaction is aborted/i.test(
      error.message,
    );
  return false;
}

/**
 * The model's verdict. A scope that reported `CommitOutcomeUnknownError` (its connection died
 * during COMMIT) may have committed or not: the verdict is the one of those readings whose rows
 * match the table, so its rows must be all there or all absent.
 */
function verdictFor(program: Program, recorder: Report, rows: Row[]): Verdict {
  const unknown = [...recorder.outcomes]
    .filter(([, outcome]) => UNKNOWN.has(outcome))
    .map(([key]) => key)
    .slice(0, 4);
  const tags = new Set(rows.map((row) => row.tag));
  let first: Verdict | undefined;
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const outcomes = new Map(recorder.outcomes);
    unknown.forEach((key, i) => {
      if (mask & (1 << i)) outcomes.set(key, 'ok');
    });
    const verdict = judge(program, { ...recorder, outcomes });
    first ??= verdict;
    const expected = new Set(verdict.rows.map((row) => row.tag));
    if (expected.size === tags.size && [...expected].every((tag) => tags.has(tag))) return verdict;
  }
  return first!;
}

/** Compares the rows with the model; returns the problems found. */
function compare(engine: Engine, program: Program, fuzz: FuzzApp, rows: Row[]): string[] {
  const { recorder } = fuzz.interpreter;
  const verdict = verdictFor(program, recorder, rows);
  const problems: string[] = [];
  const expected = new Map(verdict.rows.map((row) => [row.tag, row.tx]));
  const actual = new Map(rows.map((row) => [row.tag, row]));
  for (const tag of expected.keys()) if (!actual.has(tag)) problems.push(`row ${tag} missing`);
  for (const tag of actual.keys())
    if (!expected.has(tag) && !verdict.either.has(tag))
      problems.push(`row ${tag} present but must not be`);
  for (const [tag, outcome] of recorder.late)
    if (outcome === 'ok') problems.push(`${tag}: work that outlived its context wrote a row`);

  // Each transaction's rows: one transaction id and one connection, shared with no other.
  const groups = new Map<string, Row[]>();
  for (const [tag, tx] of expected) {
    const row = actual.get(tag);
    if (row) groups.set(tx, [...(groups.get(tx) ?? []), row]);
  }
  const owner = new Map<string, string>();
  for (const [tx, members] of groups) {
    const txids = new Set(members.map((row) => row.txid));
    const backends = new Set(members.map((row) => String(row.backend)));
    if (txids.size > 1) problems.push(`transaction ${tx}: rows in ${txids.size} transactions`);
    if (backends.size > 1) problems.push(`transaction ${tx}: rows on ${backends.size} connections`);
    const plain = tx.startsWith('plain ');
    if (engine.name === 'mariadb' && !plain && members.some((row) => Number(row.in_tx) !== 1))
      problems.push(`transaction ${tx}: a row written outside a transaction`);
    const id = members[0]?.txid;
    if (engine.name === 'postgres' && !program.kit && id) {
      if (owner.has(id)) problems.push(`transactions ${owner.get(id)} and ${tx} share txid ${id}`);
      owner.set(id, tx);
    }
  }

  // Outcomes: what each unit and block reported against what the model predicts.
  const ENVIRONMENTAL = program.kill ? KILLED : POOL;
  const contended =
    program.kit || program.units.reduce((sum, unit) => sum + demand(unit), 0) > program.pool;
  const disturbed = new Set<number>();
  for (const [key, outcome] of recorder.outcomes)
    if (ENVIRONMENTAL.has(outcome)) disturbed.add(Number(/^u(\d+)/.exec(key)![1]));
  for (const [tag, outcome] of recorder.callbacks)
    if (ENVIRONMENTAL.has(outcome)) disturbed.add(Number(/^u(\d+)/.exec(tag)![1]));
  for (const [u, unit] of program.units.entries())
    if (!recorder.outcomes.has(`u${u}@`))
      problems.push(`unit ${u} (${unit.kind}) reported nothing`);
  for (const [key, predicted] of verdict.predicted) {
    const outcome = recorder.outcomes.get(key);
    if (outcome === undefined) continue; // never ran: something before it failed
    const u = Number(/^u(\d+)/.exec(key)![1]);
    if (predicted === 'fail' && outcome === 'ok') problems.push(`${key} succeeded but must fail`);
    if (predicted === 'ok' && outcome !== 'ok') {
      if (!((contended || program.kill) && disturbed.has(u)))
        problems.push(`${key} failed with ${outcome}`);
    }
  }
  if (disturbed.size > 0 && !contended && !program.kill)
    problems.push('a pool timeout although the pool suffices');
  // A commit whose outcome is unknown (CommitOutcomeUnknownError) may have committed, but the
  // library cannot tell: it runs no afterCommit callback of it (docs/errors.md).
  const unsure = new Set(
    [...recorder.outcomes]
      .filter(([, outcome]) => UNKNOWN.has(outcome))
      .map(([key]) => /^u(\d+)/.exec(key)![1]),
  );
  for (const [tag, ran] of verdict.callbacksRun) {
    const outcome = recorder.callbacks.get(tag);
    const maybe = unsure.has(/^u(\d+)/.exec(tag)?.[1] ?? '');
    if (ran && outcome === undefined && !maybe) problems.push(`afterCommit ${tag} did not run`);
    if (!ran && outcome !== undefined)
      problems.push(`afterCommit ${tag} ran (${outcome}) but must not`);
    if (outcome === 'running')
      problems.push(`afterCommit ${tag} still running after its unit ended`);
  }
  for (const { where, error } of recorder.errors)
    if (!allowedError(error))
      problems.push(
        `${where}: unexpected error ${(error as Error)?.name}: ${(error as Error)?.message}`,
      );
  return problems;
}

/** Runs `program` on `fuzz` and throws a description of every broken invariant. */
/** OpenTelemetry for the programs marked `traced`. */
const tracing = new FuzzTracing();

export async function runProgram(
  engine: Engine,
  fuzz: FuzzApp,
  program: Program,
  admin: DataSource,
): Promise<void> {
  const { interpreter } = fuzz;
  if (process.env.FUZZ_LOG)
    appendFileSync(process.env.FUZZ_LOG, `${engine.name} ${JSON.stringify(program)}\n`);
  interpreter.recorder.reset(program);
  interpreter.admin = admin;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const problems: string[] = [];
  let tx: TestTransaction | undefined;
  if (program.traced) tracing.start();
  try {
    const stray = await readRows(admin);
    if (stray.length > 0)
      problems.push(
        `rows written after their program ended: ${stray.map((row) => row.tag).join(', ')}`,
      );
    if (program.kit) tx = await TestTransaction.start(fuzz.app);
    const { kill: killing } = program;
    await bounded(
      Promise.all([
        ...program.units.map((_, u) => interpreter.runUnit(u, () => fuzz.post(u))),
        killing && sleep(killing.afterMs).then(() => kill(engine, admin, killing.victim)),
      ]),
      'the program',
      BOUND_MS,
    );
    await bounded(Promise.all(interpreter.recorder.pending), 'work after its context', BOUND_MS);
    // Under the kit the app's own DataSource sees the test's transaction; else a fresh connection.
    problems.push(...compare(engine, program, fuzz, await readRows(tx ? fuzz.dataSource : admin)));
    if (tx) {
      const kit = tx;
      tx = undefined;
      await bounded(kit.rollback(), 'tx.rollback()', BOUND_MS);
      interpreter.recorder.endTest();
      const after = interpreter.recorder.afterTestWork;
      await bounded(Promise.all(after), 'work after the test', BOUND_MS);
      for (const [tag, outcome] of interpreter.recorder.afterTest)
        if (outcome === 'ok') problems.push(`${tag}: work of an ended test wrote a row`);
      const left = await readRows(admin);
      if (left.length > 0) problems.push(`after tx.rollback() ${left.length} row(s) remain`);
    }
    const dirty = await clean(engine, fuzz, admin);
    if (dirty) problems.push(`after the program: ${dirty}`);
    if (program.traced) {
      await tracing.quiet(ACQUIRE_TIMEOUT + 1000);
      problems.push(...tracing.stop());
    }
    await new Promise((resolve) => setImmediate(resolve));
    for (const reason of unhandled)
      problems.push(
        `unhandled rejection: ${(reason as Error)?.name}: ${(reason as Error)?.message}`,
      );
  } catch (error) {
    problems.push(`${(error as Error).name}: ${(error as Error).message}`);
    fuzz.broken = true; // a hung program leaves work behind: the next program gets a fresh app
  } finally {
    if (program.traced) tracing.stop();
    process.off('unhandledRejection', onUnhandled);
    if (tx) await bounded(tx.rollback(), 'tx.rollback()', 5000).catch(() => undefined);
    interpreter.recorder.endTest();
    await bounded(admin.query('DELETE FROM fuzz_row'), 'DELETE', BOUND_MS).catch(() => undefined);
  }
  if (problems.length > 0) {
    const outcomes = [...interpreter.recorder.outcomes].map(([k, v]) => `${k}=${v}`).join(' ');
    throw new Error(
      `${engine.name}: ${problems.join('; ')}\n  outcomes: ${outcomes}\n  program: ${JSON.stringify(program)}`,
    );
  }
}
