/**
 * The programs of the randomized model-based test (issue 18) and the model of their outcomes.
 *
 * A program is a few concurrent units (an HTTP request, `runInNewContext()`, `sessionFactory.atomic()`,
 * `sessionFactory.open()` with explicit commits, a `@Transactional()` call from outside any context),
 * each a random sequence of statements and blocks. Every row a unit writes carries a tag that names
 * the unit and the statement's place in the program, so the model can say which rows must exist
 * given what each unit and block reported, and what each of them should have reported.
 */

/** One statement or block of a unit's body. Throwing steps (`throw`, `bad`) end their body. */
export type Step =
  /**
   * One INSERT on the current session; `plain`: through the DataSource's own manager (plain
   * TypeORM), which the app's `plainTypeorm: 'join'` runs on the current session all the same.
   */
  | { t: 'insert'; plain?: true }
  /** `Promise.all` of `n` INSERTs on the current session (`plain`: as for `insert`). */
  | { t: 'parallel'; n: number; plain?: true }
  /** A NESTED block (savepoint); its error, if any, is caught. */
  | { t: 'nested'; via: Via; body: Step[] }
  /** `Promise.all` of NESTED blocks on the current session, each caught. */
  | { t: 'nestedAll'; blocks: Step[][] }
  /** A REQUIRES_NEW block (its own transaction); its error, if any, is caught. */
  | { t: 'requiresNew'; via: Via; body: Step[] }
  /** A REQUIRED block that joins; an escaping error is caught, which makes the transaction rollback-only. */
  | { t: 'required'; body: Step[]; prop?: 'MANDATORY' | 'SUPPORTS' }
  /** A NOT_SUPPORTED block: each of its INSERTs commits on its own; maybe a throw at the end. */
  | { t: 'notSupported'; n: number; throws: boolean }
  /** A NEVER block inside a transaction: refused with TransactionNotAllowedError, runs nothing. */
  | { t: 'never' }
  /** A `sessionFactory.open()` session used inside the unit (its error, if any, is caught). */
  | { t: 'open'; ops: OpenOp[] }
  /** An INSERT, then `afterCommit(cb)`: the callback writes a row through `sessionFactory.atomic()` and maybe throws. */
  | { t: 'afterCommit'; throws: boolean }
  /** `sessionContext.commit()` (top level of request and runInNewContext units only). */
  | { t: 'commit' }
  /** `sessionContext.rollback()`: undoes the transaction so far and clears its rollback-only mark (same places). */
  | { t: 'rollback' }
  /** A query-builder stream of `n` rows whose 'data' events each write a row on the session. */
  | { t: 'stream'; n: number }
  /**
   * Work that outlives its context: after the unit ended it writes through `session()`, a kept
   * manager, or the DataSource's own manager (plain TypeORM, joined: it must fail the same way).
   */
  | { t: 'late'; how: 'session' | 'manager' | 'plain' }
  /**
   * Work of the unit that runs only once the program's test transaction rolled back (kit only):
   * a query builder the unit made, a query runner of its own, or `dataSource.transaction()`. The
   * kit must refuse it (never commit it on the pool).
   */
  | { t: 'afterTest'; how: 'builder' | 'runner' | 'transaction' }
  /** A row that makes `beforeCommit` throw, or (PostgreSQL) a row whose deferred constraint fails at COMMIT. */
  | { t: 'arm'; hook: 'beforeCommit' | 'deferred' }
  /** Throws the user's own error. */
  | { t: 'throw' }
  /** A statement the database rejects. */
  | { t: 'bad' }
  /** Kills the session's own server connection from outside, then queries on it. */
  | { t: 'killSelf' };

/** How a block is opened: `sessionContext.atomic()` or a `@Transactional()` method. */
export type Via = 'atomic' | 'decorator';

/** One step of a `sessionFactory.open()` unit; `close()` always follows the last one. */
export type OpenOp = 'insert' | 'parallel' | 'commit' | 'rollback' | 'throw';

/** A unit: one concurrent piece of work of the program. */
export type Unit =
  | { kind: 'http' | 'newContext' | 'factoryAtomic'; body: Step[]; failBegin: boolean }
  | {
      kind: 'transactional';
      propagation: 'REQUIRED' | 'REQUIRES_NEW' | 'NESTED';
      body: Step[];
      failBegin: boolean;
    }
  | { kind: 'open'; ops: OpenOp[] };

/** A generated program: units run together in one `Promise.all`. */
export interface Program {
  /** The data source's pool size (1-3). */
  pool: number;
  /** Runs the program inside `TestTransaction.start(app)` ... `tx.rollback()`. */
  kit: boolean;
  /** Kills the server connection of rank `victim` (by id, any of the app's) `afterMs` into the program. */
  kill?: { afterMs: number; victim: number };
  /** Runs the program with the OpenTelemetry instrumentation enabled (every span must end once). */
  traced?: boolean;
  units: Unit[];
}

/** The tag of the row a step writes (`k`: index among a parallel step's rows). */
export const tagOf = (unit: number, path: number[], k?: number) =>
  `u${unit}/${path.join('.')}${k === undefined ? '' : `:${k}`}`;

/** The tag of the row an afterCommit callback writes. */
export const callbackTag = (unit: number, path: number[]) => `${tagOf(unit, path)}/cb`;

/** The key of a unit's or block's reported outcome. */
export const scopeKey = (unit: number, path: number[]) => `u${unit}@${path.join('.')}`;

/** What one run reported: per scope `'ok'` or the error's name; per callback whether it ran. */
export interface Report {
  outcomes: Map<string, string>;
  callbacks: Map<string, string>;
}

/** The tag of the row a `late` step tries to write once its unit ended (it must never exist). */
export const lateTag = (unit: number, path: number[]) => `${tagOf(unit, path)}/late`;

/** One row the model expects, with the transaction (scope key) that must have written it. */
export interface Expected {
  tag: string;
  tx: string;
}

/** What the model derives from a program and a report. */
export interface Verdict {
  rows: Expected[];
  /** Rows that may or may not exist (a statement that committed on its own, or failed to run). */
  either: Set<string>;
  /** Scope key -> the outcome the model predicts (`'ok'` or `'fail'`). */
  predicted: Map<string, 'ok' | 'fail'>;
  /** Callback tag -> whether the callback must have run. */
  callbacksRun: Map<string, boolean>;
}

/**
 * Derives the rows that must exist from what each unit and block reported, and predicts what each
 * should have reported. A row exists iff every scope from it up to its transaction reported
 * success. Under the kit a REQUIRES_NEW block or a factory session opened in a unit is a savepoint
 * of the unit's transaction if that transaction has begun (the unit sent a statement since it
 * began or since its last commit() or rollback()): up to the unit. If it has not, the block's
 * savepoint stands alone in the test's transaction and outlives the unit's failure, as the
 * block's commit does on the pool (docs/testing.md).
 */
export function judge(program: Program, report: Report): Verdict {
  const verdict: Verdict = {
    rows: [],
    either: new Set(),
    predicted: new Map(),
    callbacksRun: new Map(),
  };
  const ok = (key: string) => report.outcomes.get(key) === 'ok';

  /**
   * Walks a body; `chain`: scope keys that must be ok; `tx`: the transaction's key; `began`:
   * whether the session's transaction has begun when the body starts. Returns whether no error
   * escapes the body (`fine`), whether it left its transaction or savepoint rollback-only
   * (`poisoned`: a joined block failed, or a row arms a commit failure) and whether the
   * transaction has begun after it.
   */
  const walk = (
    unit: number,
    path: number[],
    body: Step[],
    chain: string[],
    tx: string,
    segments: boolean,
    began: boolean,
  ): { fine: boolean; poisoned: boolean; began: boolean } => {
    let fine = true; // predicted: the body's scope ends ok
    let segmentChain = chain;
    let segmentTx = tx;
    let segmentFine = true;
    const ends = body
      .map((step, i) => (step.t === 'commit' || step.t === 'rollback' ? i : -1))
      .filter((i) => i >= 0);
    const segmentEnd = (i: number) => ends.find((c) => c >= i);
    // A segment that a rollback ends never commits: its chain holds a key nothing reports.
    const segmentKey = (i: number) => {
      const end = segmentEnd(i);
      if (end === undefined) return undefined;
      return body[end]!.t === 'rollback' ? 'rolled back' : scopeKey(unit, [...path, end]);
    };
    body.forEach((step, i) => {
      const here = [...path, i];
      if (segments) {
        const key = segmentKey(i);
        segmentChain = key === undefined ? chain : [key];
        segmentTx = key === undefined ? tx : key;
      }
      const live = segmentChain.every(ok);
      const row = (tag: string) => {
        if (live) verdict.rows.push({ tag, tx: segmentTx });
      };
      // Under the kit a block of its own nests in the unit's savepoint only once that began.
      const ownChain = (key: string) => (program.kit && began ? [key, ...segmentChain] : [key]);
      switch (step.t) {
        case 'insert':
          row(tagOf(unit, here));
          began = true;
          break;
        case 'parallel':
        case 'stream':
          for (let k = 0; k < step.n; k++) row(tagOf(unit, here, k));
          began = true;
          break;
        case 'notSupported': {
          // Each INSERT commits on its own whatever happens around it; an escaping error of the
          // block makes nothing rollback-only (there is no transaction in it).
          const key = scopeKey(unit, here);
          verdict.predicted.set(key, step.throws ? 'fail' : 'ok');
          const outcome = report.outcomes.get(key);
          const ran = outcome === 'ok' || outcome === 'UserError';
          for (let k = 0; k < step.n; k++) {
            const tag = tagOf(unit, here, k);
            if (ran) verdict.rows.push({ tag, tx: `plain ${tag}` });
            else verdict.either.add(tag);
          }
          break;
        }
        case 'never':
          verdict.predicted.set(scopeKey(unit, here), 'fail');
          break;
        case 'open': {
          const key = scopeKey(unit, here);
          const chain = program.kit && began ? segmentChain : [];
          verdict.predicted.set(
            key,
            openSession(unit, here, step.ops, chain, segmentTx) ? 'ok' : 'fail',
          );
          break;
        }
        case 'rollback':
          verdict.predicted.set(scopeKey(unit, here), 'ok');
          segmentFine = true;
          began = false;
          break;
        case 'late':
        case 'afterTest':
          break;
        case 'afterCommit': {
          row(tagOf(unit, here));
          began = true;
          const cb = callbackTag(unit, here);
          verdict.callbacksRun.set(cb, live);
          if (live && report.callbacks.get(cb) === 'ok') verdict.rows.push({ tag: cb, tx: cb });
          break;
        }
        case 'nested': {
          // A NESTED block begins the transaction at once, to send its SAVEPOINT.
          began = true;
          const key = scopeKey(unit, here);
          verdict.predicted.set(
            key,
            owned(walk(unit, here, step.body, [key, ...segmentChain], segmentTx, false, true)),
          );
          break;
        }
        case 'nestedAll':
          began = step.blocks.length > 0 || began;
          step.blocks.forEach((block, b) => {
            const at = [...here, b];
            const key = scopeKey(unit, at);
            verdict.predicted.set(
              key,
              owned(walk(unit, at, block, [key, ...segmentChain], segmentTx, false, true)),
            );
          });
          break;
        case 'requiresNew': {
          const key = scopeKey(unit, here);
          const inner = ownChain(key);
          verdict.predicted.set(
            key,
            owned(walk(unit, here, step.body, inner, program.kit ? segmentTx : key, false, false)),
          );
          break;
        }
        case 'required': {
          // A joined block: its rows are the enclosing transaction's; an escaping error poisons it.
          const key = scopeKey(unit, here);
          const block = walk(unit, here, step.body, segmentChain, segmentTx, false, began);
          verdict.predicted.set(key, block.fine ? 'ok' : 'fail');
          if (!block.fine || block.poisoned) segmentFine = false;
          began = block.began;
          break;
        }
        case 'commit':
          verdict.predicted.set(scopeKey(unit, here), segmentFine ? 'ok' : 'fail');
          if (!segmentFine) fine = false; // the commit's error escapes the unit
          segmentFine = true;
          began = false;
          break;
        case 'arm':
          row(tagOf(unit, here));
          segmentFine = false;
          began = true;
          break;
        case 'throw':
        case 'bad':
        case 'killSelf':
          fine = false;
          break;
      }
    });
    return { fine, poisoned: !segmentFine, began };
  };
  /**
   * A `sessionFactory.open()` session's ops at `path`: rows up to a commit that succeeded exist if
   * `chain` is ok too (under the kit: the scopes it nests in). Returns predicted ok.
   */
  const openSession = (
    unit: number,
    path: number[],
    ops: OpenOp[],
    chain: string[],
    tx: string,
  ): boolean => {
    let fine = true;
    let pending: string[] = [];
    ops.forEach((op, i) => {
      if (!fine) return;
      const here = [...path, i];
      if (op === 'insert') pending.push(tagOf(unit, here));
      if (op === 'parallel') pending.push(tagOf(unit, here, 0), tagOf(unit, here, 1));
      if (op === 'commit') {
        const commitKey = scopeKey(unit, here);
        verdict.predicted.set(commitKey, 'ok');
        if (ok(commitKey) && chain.every(ok))
          for (const tag of pending) verdict.rows.push({ tag, tx: program.kit ? tx : commitKey });
        if (!ok(commitKey)) fine = false;
        pending = [];
      }
      if (op === 'rollback') pending = [];
      if (op === 'throw') fine = false;
    });
    return fine;
  };
  /** A block that owns its savepoint or transaction fails if an error escapes or it is poisoned. */
  const owned = ({ fine, poisoned }: { fine: boolean; poisoned: boolean }) =>
    fine && !poisoned ? 'ok' : 'fail';

  program.units.forEach((unit, u) => {
    const key = scopeKey(u, []);
    if (unit.kind === 'open') {
      verdict.predicted.set(key, openSession(u, [], unit.ops, [], key) ? 'ok' : 'fail');
      return;
    }
    const body = walk(
      u,
      [],
      unit.body,
      [key],
      key,
      unit.kind === 'http' || unit.kind === 'newContext',
      false,
    );
    verdict.predicted.set(key, owned(body) === 'ok' && !unit.failBegin ? 'ok' : 'fail');
  });
  return verdict;
}

/** Connections a unit may hold at once (its transaction plus REQUIRES_NEW blocks inside it). */
export function demand(unit: Unit): number {
  if (unit.kind === 'open') return 1;
  const depth = (body: Step[]): number =>
    Math.max(
      0,
      ...body.map((step) => {
        if (step.t === 'requiresNew') return 1 + depth(step.body);
        if (step.t === 'nested' || step.t === 'required') return depth(step.body);
        if (step.t === 'nestedAll') return Math.max(...step.blocks.map(depth));
        if (step.t === 'afterCommit' || step.t === 'notSupported' || step.t === 'open') return 1;
        return 0;
      }),
    );
  return 1 + depth(unit.body);
}
