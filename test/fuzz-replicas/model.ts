/**
 * The replica fuzz's programs (docs/fuzz.md, "The replica model"): simulated clients, each a
 * sequence of writes and reads carrying its own consistency token, run concurrently with each other
 * and with an environment lane that pauses and resumes replay on the standbys. What each operation
 * must commit (in commit order) and report. Every row's text names its program, client and op.
 */
import fc from 'fast-check';

/** The apps a program's operations run on (built once, see the spec): their replicas and options. */
export const APPS = [
  { name: 'one replica', slaves: 1, wait: 0 },
  { name: 'two replicas', slaves: 2, wait: 0 },
  { name: 'two replicas, consistency.wait 150 ms', slaves: 2, wait: 150 },
  { name: 'one replica, maxReplicaLag 150 ms, wait 60 ms, refresh 10 ms', slaves: 1, wait: 60 },
] as const;

/** How a unit outside HTTP gets the client's token. */
export type Carry = 'option' | 'consistentWith';

/** A NESTED block inside a write: its rows, ok or failing (caught by its caller). */
export interface Nested {
  rows: number;
  fail: boolean;
}

/** A write of a client; `app` is the index in APPS it runs on. */
export type Write =
  /**
   * An HTTP request writing in its own unit of work (maybe with a NESTED block), ok or failing;
   * with no rows, it only reads in its own (read-write) transaction: on the primary, no token.
   */
  | { kind: 'request'; app: number; rows: number; nested?: Nested; fail: boolean }
  /**
   * An HTTP request: writes, `sessionContext.commit()`, maybe a read-only atomic (must run on the
   * primary and see the commit), more writes, then ok or failing (the first part stays).
   */
  | {
      kind: 'commitMid';
      app: number;
      before: number;
      after: number;
      readAfter: boolean;
      fail: boolean;
    }
  /**
   * An HTTP request: `own` rows in its own session, then a `runInNewContext()` writing `child`
   * rows (ok or failing, caught), then ok or failing.
   */
  | { kind: 'child'; app: number; own: number; child: number; childFail: boolean; fail: boolean }
  /**
   * Outside HTTP: `runInNewContext()` carrying the token (`carry`) around a `sessionFactory.atomic()`
   * write (maybe with a NESTED block), ok or failing (caught); returns consistencyToken().
   */
  | { kind: 'atomic'; app: number; carry: Carry; rows: number; nested?: Nested; fail: boolean };

/** How a read-only transaction is begun. */
export type ReadVia =
  /** HTTP: `sessionFactory.atomic(fn, { readOnly: true })` in the request. */
  | 'httpAtomic'
  /** HTTP: `@Transactional({ readOnly: true, propagation: REQUIRES_NEW })`. */
  | 'httpReport'
  /** HTTP: a read-only atomic inside a `runInNewContext()` of the request. */
  | 'httpChild'
  /** Outside HTTP: `runInNewContext()` + read-only `sessionFactory.atomic()`. */
  | 'directAtomic'
  /** Outside HTTP: `runInNewContext()` + the read-only REQUIRES_NEW method. */
  | 'directReport'
  /** Outside HTTP: `runInNewContext()` + `sessionFactory.open({ readOnly: true })`, committed. */
  | 'directOpen';

/**
 * A read of the client's rows, with the client's latest token or without any; `copies` of it at
 * once (a page that fires several requests with the same token).
 */
export interface Read {
  kind: 'read';
  app: number;
  via: ReadVia;
  carry: Carry;
  withToken: boolean;
  copies: number;
}

/** One operation of a client, and the milliseconds it waits before it starts. */
export interface ClientStep {
  delay: number;
  op: Write | Read;
}

/** An operation of the environment lane (standby 0: the suite's standby; 1: the second one). */
export type EnvOp =
  | { kind: 'pause'; standby: number }
  | { kind: 'resume'; standby: number }
  | { kind: 'sleep'; ms: number };

/** A program: 2-4 clients of 1-7 steps each, and 0-7 environment steps, all started together. */
export interface Program {
  clients: ClientStep[][];
  env: EnvOp[];
}

/** The message of the error an operation throws on purpose. */
export function failure(tag: string): string {
  return `planned failure ${tag}`;
}

/** The texts `count` rows of `tag` get: `<tag>_<label><n>`. */
export function texts(tag: string, label: string, count: number): string[] {
  return Array.from({ length: count }, (_, n) => `${tag}_${label}${n}`);
}

/** What the model predicts for a write. */
export interface WriteModel {
  /** The transactions it commits, in commit order, each the texts of its rows. */
  groups: string[][];
  /** Whether the request (or the block, outside HTTP) succeeds. */
  ok: boolean;
  /** What its caught inner block reports: 'ok' or its planned failure. */
  inner?: string;
}

/** The commits and outcome of the write tagged `tag`. */
export function expectedWrite(tag: string, op: Write): WriteModel {
  const nestedRows = (nested: Nested | undefined) =>
    nested === undefined || nested.fail ? [] : texts(tag, 'n', nested.rows);
  const nestedInner = (nested: Nested | undefined) =>
    nested === undefined ? undefined : nested.fail ? failure(`${tag}_nested`) : 'ok';
  switch (op.kind) {
    case 'request':
      return {
        ok: !op.fail,
        groups:
          op.fail || op.rows === 0 ? [] : [[...texts(tag, 'w', op.rows), ...nestedRows(op.nested)]],
        inner: op.fail ? undefined : nestedInner(op.nested),
      };
    case 'commitMid':
      return {
        ok: !op.fail,
        groups: [
          texts(tag, 'c', op.before),
          ...(op.fail || op.after === 0 ? [] : [texts(tag, 'a', op.after)]),
        ],
      };
    case 'child':
      return {
        ok: !op.fail,
        groups: [
          ...(op.childFail ? [] : [texts(tag, 'k', op.child)]),
          ...(op.fail || op.own === 0 ? [] : [texts(tag, 'w', op.own)]),
        ],
        inner: op.fail ? undefined : op.childFail ? failure(`${tag}_child`) : 'ok',
      };
    case 'atomic':
      return {
        ok: !op.fail,
        groups: op.fail ? [] : [[...texts(tag, 'w', op.rows), ...nestedRows(op.nested)]],
        inner: nestedInner(op.nested),
      };
  }
}

/** The primary WAL position a token names for the default data source (`default=16/B374D848`). */
export function tokenLsn(token: string): bigint {
  const match = /^default=([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/.exec(token);
  if (!match) throw new Error(`not a token of the default data source: ${token}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** A pg_lsn as PostgreSQL prints it (`16/B374D848`), as a number. */
export function lsnOf(text: string): bigint {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

const appArb = fc.integer({ min: 0, max: APPS.length - 1 });
const carryArb = fc.constantFrom<Carry>('option', 'consistentWith');
const nestedArb = fc.option(
  fc.record({ rows: fc.integer({ min: 1, max: 2 }), fail: fc.boolean() }),
  { nil: undefined, freq: 2 },
);
const failArb = fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, fc.constant(true));

const writeArb: fc.Arbitrary<Write> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record(
        {
          kind: fc.constant('request' as const),
          app: appArb,
          rows: fc.integer({ min: 0, max: 3 }),
          nested: nestedArb,
          fail: failArb,
        },
        { requiredKeys: ['kind', 'app', 'rows', 'fail'] },
      )
      // No rows: a request that only reads (a NESTED block alone could commit an empty write).
      .map((op) => (op.rows === 0 ? { ...op, nested: undefined } : op)),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('commitMid' as const),
      app: appArb,
      before: fc.integer({ min: 1, max: 2 }),
      after: fc.integer({ min: 0, max: 2 }),
      readAfter: fc.boolean(),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('child' as const),
      app: appArb,
      own: fc.integer({ min: 0, max: 2 }),
      child: fc.integer({ min: 1, max: 2 }),
      childFail: fc.boolean(),
      fail: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record(
      {
        kind: fc.constant('atomic' as const),
        app: appArb,
        carry: carryArb,
        rows: fc.integer({ min: 1, max: 3 }),
        nested: nestedArb,
        fail: failArb,
      },
      { requiredKeys: ['kind', 'app', 'carry', 'rows', 'fail'] },
    ),
  },
);

const readArb: fc.Arbitrary<Read> = fc.record({
  kind: fc.constant('read' as const),
  app: appArb,
  via: fc.constantFrom<ReadVia>(
    'httpAtomic',
    'httpReport',
    'httpChild',
    'directAtomic',
    'directReport',
    'directOpen',
  ),
  carry: carryArb,
  withToken: fc.oneof({ weight: 2, arbitrary: fc.constant(true) }, fc.constant(false)),
  copies: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, fc.integer({ min: 2, max: 4 })),
});

const stepArb: fc.Arbitrary<ClientStep> = fc.record({
  delay: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 40 })),
  op: fc.oneof({ weight: 1, arbitrary: writeArb }, { weight: 1, arbitrary: readArb }),
});

const envArb: fc.Arbitrary<EnvOp> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('pause' as const),
      standby: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('resume' as const),
      standby: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('sleep' as const),
      ms: fc.integer({ min: 0, max: 200 }),
    }),
  },
);

/** Most programs pause one standby or both first thing, so that writes land while it is paused. */
const startArb: fc.Arbitrary<EnvOp[]> = fc.constantFrom<EnvOp[]>(
  [],
  [{ kind: 'pause', standby: 0 }],
  [{ kind: 'pause', standby: 1 }],
  [
    { kind: 'pause', standby: 0 },
    { kind: 'pause', standby: 1 },
  ],
);

/** Programs of 2-4 clients (1-7 steps each) and 0-7 environment steps. */
export const programArb: fc.Arbitrary<Program> = fc.record({
  clients: fc.array(fc.array(stepArb, { minLength: 1, maxLength: 7 }), {
    minLength: 2,
    maxLength: 4,
  }),
  env: fc
    .tuple(startArb, fc.array(envArb, { maxLength: 5 }))
    .map(([start, rest]) => [...start, ...rest]),
});
