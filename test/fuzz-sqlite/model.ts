/**
 * The SQLite fuzz's programs: what an operation is, how fast-check draws one, and which rows each
 * must leave behind. Every row's text names its program, its operation and its place in it.
 */
import fc from 'fast-check';

/** What an operation awaits between two of its writes: nothing, a macrotask turn, or a timer. */
export type Pause = 'none' | 'immediate' | number;

/** How an independent session is opened. */
export type Independent = 'requiresNew' | 'atomic' | 'runInNewContext' | 'open';

/** One operation of a program; each runs concurrently with the others. */
export type Op =
  /**
   * An HTTP request writing `writes` rows through sessionContext.session() (one after another,
   * or all started in one Promise.all), then ok or throwing.
   */
  | { kind: 'request'; writes: number; pause: Pause; together: boolean; fail: boolean }
  /** A request writing one row, then a caught NESTED block writing `nested` rows (ok or failing). */
  | { kind: 'nested'; nested: number; nestedFail: boolean; fail: boolean }
  /** A request opening an independent session BEFORE its own session is used, then writing. */
  | {
      kind: 'newFirst';
      via: Independent;
      block: number;
      blockFail: boolean;
      writes: number;
      fail: boolean;
    }
  /** An independent session from outside any unit. */
  | { kind: 'outsideNew'; via: Independent; block: number; blockFail: boolean }
  /** Plain TypeORM outside any unit: `manager.insert` per row, or one `dataSource.transaction()`. */
  | { kind: 'plain'; via: 'insert' | 'transaction'; writes: number; fail: boolean }
  /** A request with NESTED blocks started in one Promise.all (and an outer write beside them). */
  | { kind: 'nestedAll'; blocks: NestedBlock[]; outerWrite: boolean; fail: boolean }
  /** A request whose plain TypeORM code (after its session is used) joins its session. */
  | { kind: 'plainInside'; writes: number; transaction: boolean; txFail: boolean; fail: boolean }
  /**
   * A request: writes, sessionContext.commit(), optionally an independent session (allowed once
   * the turn was given back), more writes, then ok or throwing.
   */
  | {
      kind: 'commitMid';
      before: number;
      after: number;
      pause: Pause;
      then?: Independent;
      fail: boolean;
    }
  /**
   * A readOnly REQUIRES_NEW block, from outside any unit or first thing in a request: a read, or a
   * write the database refuses (SQLITE_READONLY; the request catches it and reports it).
   */
  | { kind: 'readOnly'; where: 'outside' | 'request'; write: boolean };

/** One NESTED block of a `nestedAll`: its rows, its pause between them, ok or failing. */
export interface NestedBlock {
  writes: number;
  pause: Pause;
  fail: boolean;
}

/** An operation and the milliseconds it waits before it starts (0: starts at once). */
export interface Step {
  delay: number;
  op: Op;
}

/**
 * The documented self-wait (docs/sqlite.md): a request whose transaction holds the connection
 * awaits an independent session, which must fail with ConnectionAcquireTimeoutError. It runs on an
 * app of its own (acquireTimeout 300 ms, its own in-memory database), concurrently with the steps.
 */
export interface SelfWait {
  via: Independent;
  fail: boolean;
}

/** A program: 5-30 concurrent steps, and rarely a self-wait beside them. */
export interface Program {
  steps: Step[];
  selfWait?: SelfWait;
}

/** What a request reports when its read-only block's write was refused by the database. */
export const READ_ONLY_REFUSED = 'refused: read-only';

/** Whether `message` is SQLite's refusal of a write in a read-only transaction. */
export function isReadOnlyRefusal(message: string): boolean {
  return /SQLITE_READONLY|readonly database/i.test(message);
}

/** The message of the error an operation throws on purpose (and nothing else may be thrown). */
export function failure(tag: string): string {
  return `planned failure ${tag}`;
}

const pauseArb: fc.Arbitrary<Pause> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<Pause>('none') },
  { weight: 1, arbitrary: fc.constant<Pause>('immediate') },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 5 }) },
);
const independentArb = fc.constantFrom<Independent>(
  'requiresNew',
  'atomic',
  'runInNewContext',
  'open',
);
const rows = (min = 1) => fc.integer({ min, max: 3 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      writes: rows(),
      pause: pauseArb,
      together: fc.boolean(),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('nested' as const),
      nested: rows(),
      nestedFail: fc.boolean(),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('newFirst' as const),
      via: independentArb,
      block: rows(),
      blockFail: fc.boolean(),
      writes: rows(0),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('outsideNew' as const),
      via: independentArb,
      block: rows(),
      blockFail: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        kind: fc.constant('plain' as const),
        via: fc.constantFrom('insert' as const, 'transaction' as const),
        writes: rows(),
        fail: fc.boolean(),
      })
      // A plain insert is one statement per row: it has nothing to fail after.
      .map((op) => (op.via === 'insert' ? { ...op, fail: false } : op)),
  },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        kind: fc.constant('commitMid' as const),
        before: rows(),
        after: rows(),
        pause: pauseArb,
        then: independentArb,
        fail: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)),
      },
      { requiredKeys: ['kind', 'before', 'after', 'pause', 'fail'] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('nestedAll' as const),
      blocks: fc.array(
        fc.record({ writes: fc.integer({ min: 1, max: 2 }), pause: pauseArb, fail: fc.boolean() }),
        { minLength: 2, maxLength: 3 },
      ),
      outerWrite: fc.boolean(),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('plainInside' as const),
      writes: rows(),
      transaction: fc.boolean(),
      txFail: fc.boolean(),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('readOnly' as const),
      where: fc.constantFrom('outside' as const, 'request' as const),
      write: fc.boolean(),
    }),
  },
);

/** Programs of 5 to 30 steps; one in about 25 has a self-wait beside them. */
export const programArb: fc.Arbitrary<Program> = fc.record(
  {
    steps: fc.array(
      fc.record({
        delay: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 3 })),
        op: opArb,
      }),
      { minLength: 5, maxLength: 30 },
    ),
    selfWait: fc.oneof(
      { weight: 24, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.record({ via: independentArb, fail: fc.boolean() }) },
    ),
  },
  { requiredKeys: ['steps'] },
);

/** The texts `count` rows of `tag` get: `<tag>_<label><n>`. */
export function texts(tag: string, label: string, count: number): string[] {
  return Array.from({ length: count }, (_, n) => `${tag}_${label}${n}`);
}

/** What an operation must report, and the rows it must leave. */
export interface Expected {
  /** Whether the operation (the request, or the outside call) succeeds. */
  ok: boolean;
  /** For a request that succeeds: what its caught inner block reported (`'ok'` or its failure). */
  inner?: string;
  rows: string[];
}

/** The outcome and rows the model predicts for the operation tagged `tag`. */
export function expected(tag: string, op: Op): Expected {
  switch (op.kind) {
    case 'request':
      return { ok: !op.fail, rows: op.fail ? [] : texts(tag, 'w', op.writes) };
    case 'nested':
      return {
        ok: !op.fail,
        inner: op.fail ? undefined : op.nestedFail ? failure(`${tag}_nested`) : 'ok',
        rows: op.fail
          ? []
          : [...texts(tag, 'w', 1), ...(op.nestedFail ? [] : texts(tag, 'n', op.nested))],
      };
    case 'newFirst':
      return {
        ok: !op.fail,
        inner: op.fail ? undefined : op.blockFail ? failure(`${tag}_block`) : 'ok',
        rows: [
          ...(op.blockFail ? [] : texts(tag, 'b', op.block)),
          ...(op.fail ? [] : texts(tag, 'w', op.writes)),
        ],
      };
    case 'outsideNew':
      return { ok: !op.blockFail, rows: op.blockFail ? [] : texts(tag, 'b', op.block) };
    case 'plain':
      return { ok: !op.fail, rows: op.fail ? [] : texts(tag, 'p', op.writes) };
    case 'nestedAll':
      return {
        ok: !op.fail,
        inner: op.fail
          ? undefined
          : op.blocks.map((block, k) => (block.fail ? failure(`${tag}_n${k}`) : 'ok')).join(','),
        rows: op.fail
          ? []
          : [
              ...texts(tag, 'w', 1),
              ...(op.outerWrite ? texts(tag, 'x', 1) : []),
              ...op.blocks.flatMap((block, k) =>
                block.fail ? [] : texts(tag, `n${k}_`, block.writes),
              ),
            ],
      };
    case 'plainInside':
      return {
        ok: !op.fail,
        inner: op.fail || !op.transaction ? undefined : op.txFail ? failure(`${tag}_tx`) : 'ok',
        rows: op.fail
          ? []
          : [
              ...texts(tag, 'w', 1),
              ...texts(tag, 'p', op.writes),
              ...(op.transaction && !op.txFail ? texts(tag, 't', 1) : []),
            ],
      };
    case 'commitMid':
      return {
        ok: !op.fail,
        rows: [
          ...texts(tag, 'c', op.before),
          ...(op.then === undefined ? [] : texts(tag, 'b', 1)),
          ...(op.fail ? [] : texts(tag, 'a', op.after)),
        ],
      };
    case 'readOnly':
      // A refused write: an outside call fails, a request reports it caught (READ_ONLY_REFUSED).
      return {
        ok: !(op.write && op.where === 'outside'),
        inner: op.write && op.where === 'request' ? READ_ONLY_REFUSED : undefined,
        rows: [],
      };
  }
}
