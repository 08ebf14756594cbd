import {
  Propagation,
  RollbackOnlyError,
  SessionFactory,
  TransactionNotAllowedError,
  TransactionRequiredError,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import {
  ENGINE,
  InnerFailure,
  type InnerSeen,
  MatrixController,
  MatrixService,
  type Outcome,
  OuterFailure,
} from './matrix.service.js';

/** What a mode does when a transaction is current. */
type InContext = 'joins' | 'independent' | 'savepoint' | 'refuses' | 'suspends';
/** What a mode does when no context is current. */
type Outside = 'owns' | 'requires' | 'without';

/** The propagation table of docs/transactions.md, one row per mode. */
const modes: Array<{ mode: Propagation; inContext: InContext; outside: Outside }> = [
  { mode: Propagation.REQUIRED, inContext: 'joins', outside: 'owns' },
  { mode: Propagation.REQUIRES_NEW, inContext: 'independent', outside: 'owns' },
  { mode: Propagation.NESTED, inContext: 'savepoint', outside: 'owns' },
  { mode: Propagation.MANDATORY, inContext: 'joins', outside: 'requires' },
  { mode: Propagation.NEVER, inContext: 'refuses', outside: 'without' },
  { mode: Propagation.SUPPORTS, inContext: 'joins', outside: 'without' },
  { mode: Propagation.NOT_SUPPORTED, inContext: 'suspends', outside: 'without' },
];

type ErrorClass = new (...args: never[]) => Error;

/** What the database must hold after one outer run, and what must escape the outer context. */
interface Expected {
  rows: string[];
  /** Error the outer context ends with (undefined: it commits). */
  error?: ErrorClass;
  /** Error the outer context catches from the inner call (inner-error only). */
  innerError?: ErrorClass;
  /** What the inner block sees, when it runs at all. */
  inner?: { txid: 'outer' | 'other' | 'none'; visibleElsewhere: boolean };
}

function expected(inContext: InContext, outcome: Outcome): Expected {
  if (inContext === 'refuses') {
    // NEVER throws before running: nothing of the inner block ever reaches the database.
    return outcome === 'inner-error'
      ? { rows: ['outer'], innerError: TransactionNotAllowedError }
      : { rows: [], error: TransactionNotAllowedError };
  }
  const inner: Expected['inner'] = {
    txid: { joins: 'outer', savepoint: 'outer', independent: 'other', suspends: 'none' }[
      inContext
    ] as 'outer' | 'other' | 'none',
    // Only auto-committed work is visible to another connection before the block returns.
    visibleElsewhere: inContext === 'suspends',
  };
  switch (outcome) {
    case 'success':
      return { rows: ['inner', 'outer'], inner };
    case 'inner-error':
      return {
        inner,
        innerError: InnerFailure,
        ...{
          joins: { rows: [], error: RollbackOnlyError },
          independent: { rows: ['outer'] },
          savepoint: { rows: ['outer'] },
          suspends: { rows: ['inner', 'outer'] },
        }[inContext],
      };
    case 'outer-error':
      return {
        inner,
        error: OuterFailure,
        rows: inContext === 'independent' || inContext === 'suspends' ? ['inner'] : [],
      };
  }
}

function describeExpected(e: Expected): string {
  const rows = e.rows.length ? `keeps [${e.rows.join(', ')}]` : 'keeps nothing';
  return e.error ? `ends with ${e.error.name}, ${rows}` : `commits, ${rows}`;
}

const outcomes: Outcome[] = ['success', 'inner-error', 'outer-error'];
const cases = modes.flatMap(({ mode, inContext }) =>
  outcomes.map((outcome) => {
    const e = expected(inContext, outcome);
    return { mode, outcome, expected: e, title: `${mode} ${outcome}: ${describeExpected(e)}` };
  }),
);

describe.each(engines)('propagation matrix ($name)', (engine) => {
  let t: TestApp;
  let service: MatrixService;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      providers: [MatrixService, { provide: ENGINE, useValue: engine }],
      controllers: [MatrixController],
    });
    service = t.app.get(MatrixService);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(async () => {
    await t.dataSource.query('DELETE FROM example');
    service.seen = {};
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  /** Checks what the inner block and the outer context saw against the table. */
  function expectSeen(e: Expected): void {
    const seen = service.seen;
    expect(seen.outer).toEqual(expect.any(String));
    if (e.innerError) expect(seen.innerError).toBe(e.innerError.name);
    // Unless NEVER's error escaped, the outer code went on after the inner call: same transaction.
    if (e.error === TransactionNotAllowedError) expect(seen.outerAfter).toBeUndefined();
    else expect(seen.outerAfter).toBe(seen.outer);
    if (!e.inner) {
      expect(seen.inner).toBeUndefined();
      return;
    }
    const inner = seen.inner as InnerSeen;
    expect(inner.active).toBe(true);
    expect(inner.visibleElsewhere).toBe(e.inner.visibleElsewhere);
    if (e.inner.txid === 'outer') expect(inner.txid).toBe(seen.outer);
    if (e.inner.txid === 'none') expect(inner.txid).toBeNull();
    if (e.inner.txid === 'other') {
      expect(inner.txid).toEqual(expect.any(String));
      expect(inner.txid).not.toBe(seen.outer);
    }
  }

  describe('outer context: sessionFactory.runInNewContext()', () => {
    it.each(cases)('$title', async ({ mode, outcome, expected: e }) => {
      const run = factory.runInNewContext(() => service.scenario(mode, outcome));
      if (e.error) await expect(run).rejects.toBeInstanceOf(e.error);
      else await run;
      expectSeen(e);
      expect(await t.texts()).toEqual(e.rows);
    });
  });

  describe('outer context: an HTTP request (auto-commit interceptor)', () => {
    it.each(cases)('$title', async ({ mode, outcome, expected: e }) => {
      const response = await t.http().get(`/matrix/${mode}/${outcome}`);
      if (e.error) expect([response.status, response.body]).toEqual([500, { error: e.error.name }]);
      else expect([response.status, response.text]).toEqual([200, 'committed']);
      expectSeen(e);
      expect(await t.texts()).toEqual(e.rows);
    });
  });

  describe('outside any context (script or cron style)', () => {
    const outside = modes.flatMap(({ mode, outside: behaviour }) => [
      {
        mode,
        behaviour,
        fail: false,
        title: `${mode} success: ${
          {
            owns: 'opens a context of its own and commits when the method resolves',
            requires: 'throws TransactionRequiredError and writes nothing',
            without: 'runs without a transaction (auto-commit)',
          }[behaviour]
        }`,
      },
      {
        mode,
        behaviour,
        fail: true,
        title: `${mode} inner-error: ${
          {
            owns: 'its own context rolls back',
            requires: 'throws TransactionRequiredError before running',
            without: 'the auto-committed row survives the error',
          }[behaviour]
        }`,
      },
    ]);

    it.each(outside)('$title', async ({ mode, behaviour, fail }) => {
      const call = service.call(mode, 'inner', fail);
      if (behaviour === 'requires') {
        await expect(call).rejects.toBeInstanceOf(TransactionRequiredError);
        expect(service.seen.inner).toBeUndefined();
        expect(await t.rows()).toBe(0);
        return;
      }
      if (fail) await expect(call).rejects.toBeInstanceOf(InnerFailure);
      else await call;
      const inner = service.seen.inner as InnerSeen;
      if (behaviour === 'owns') {
        // A transaction of its own: a transaction id, and the row hidden until the commit.
        expect(inner.active).toBe(true);
        expect(inner.txid).toEqual(expect.any(String));
        expect(inner.visibleElsewhere).toBe(false);
        expect(await t.texts()).toEqual(fail ? [] : ['inner']);
      } else {
        // No transaction: no transaction id, and the row committed before the method returned.
        expect(inner.active).toBe(false);
        expect(inner.txid).toBeNull();
        expect(inner.visibleElsewhere).toBe(true);
        expect(await t.texts()).toEqual(['inner']);
      }
    });
  });
});
