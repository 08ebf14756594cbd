import { Controller, Param, Post } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, txid, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { EventLog, expectResolved, settle, sleep } from './support-a.js';

/** How a block is opened on the session: a NESTED atomic block or TypeORM's manager.transaction(). */
type Kind = 'nested' | 'transaction';

/** What one run of the two-sibling-blocks scenario observed. */
interface Observed {
  log: EventLog;
  txids: Record<string, string | null>;
  statuses: string[];
  reasons: string[];
}

let engine: Engine;

/**
 * The scenario of point 3: after an outer insert, two blocks on the context's one session in one
 * `Promise.allSettled` (block `a` succeeds, block `b` throws), then an outer insert after them.
 * Each block records when it starts and ends and the transaction id it sees.
 */
async function siblingBlocks(context: SessionContext, kind: Kind): Promise<Observed> {
  const observed: Observed = { log: new EventLog(), txids: {}, statuses: [], reasons: [] };
  const session = context.session();
  await session.insert(Example, { text: 'outer' });
  observed.txids.outer = await txid(engine, session);
  const block = (name: string, fail: boolean) => async (manager: EntityManager) => {
    observed.log.push(`${name}:start`);
    await manager.insert(Example, { text: name });
    await sleep(30); // a timer, never a wait for the sibling
    observed.txids[name] = await txid(engine, manager);
    observed.log.push(`${name}:end`);
    if (fail) throw new Error(`block ${name} failed`);
  };
  const open = (fn: (manager: EntityManager) => Promise<void>) =>
    kind === 'nested'
      ? context.atomic(fn, { propagation: Propagation.NESTED })
      : session.transaction(fn);
  const results = await Promise.allSettled([open(block('a', false)), open(block('b', true))]);
  observed.statuses = results.map((result) => result.status);
  observed.reasons = results.map((result) =>
    result.status === 'rejected' ? String((result.reason as Error).message) : '',
  );
  await session.insert(Example, { text: 'c' });
  observed.txids.after = await txid(engine, session);
  return observed;
}

/** The scenario of point 4: a NESTED block and a REQUIRED block, both failing, side by side. */
async function requiredBesideNested(context: SessionContext): Promise<string[]> {
  await context.session().insert(Example, { text: 'outer' });
  const results = await Promise.allSettled([
    context.atomic(
      async (manager) => {
        await manager.insert(Example, { text: 'nested' });
        await sleep(50);
        throw new Error('nested block failed');
      },
      { propagation: Propagation.NESTED },
    ),
    context.atomic(async (manager) => {
      await manager.insert(Example, { text: 'required' });
      throw new Error('required block failed');
    }),
  ]);
  return results.map((result) => result.status);
}

/** What the HTTP handlers saw, for the test to check. */
const seen: { observed?: Observed; statuses?: string[]; sent: string[] } = { sent: [] };

@Controller('blocks')
class BlocksController {
  constructor(private readonly context: SessionContext) {}

  @Post('siblings/:kind')
  async siblings(@Param('kind') kind: Kind) {
    seen.observed = await siblingBlocks(this.context, kind);
    return 'ok';
  }

  @Post('required-beside-nested')
  async requiredBesideNested() {
    seen.statuses = await requiredBesideNested(this.context);
    return 'ok';
  }

  /** Inserts, registers an after-commit side effect, then a REQUIRED block throws at once. */
  @Post('required-throws-first')
  async requiredThrowsFirst() {
    await this.context.session().insert(Example, { text: 'handler' });
    this.context.afterCommit(() => seen.sent.push('email'));
    await this.context
      .atomic(() => {
        throw new Error('x');
      })
      .catch(() => undefined);
    return 'ok';
  }

  /** The same without any query at all. */
  @Post('required-throws-no-query')
  async requiredThrowsNoQuery() {
    this.context.afterCommit(() => seen.sent.push('email'));
    await this.context
      .atomic(() => {
        throw new Error('x');
      })
      .catch(() => undefined);
    return 'ok';
  }
}

/** The siblings ran one at a time: one ended before the other started. */
function expectSerialized(log: EventLog): void {
  const aFirst = log.at('a:end') >= 0 && log.at('a:end') < log.at('b:start');
  const bFirst = log.at('b:end') >= 0 && log.at('b:end') < log.at('a:start');
  expect({ serialized: aFirst || bFirst, log: log.events }).toMatchObject({ serialized: true });
}

/** Point 3's outcome: outer, a and c committed in one transaction; b alone rolled back. */
function expectSiblingOutcome(observed: Observed | undefined): void {
  expect(observed).toBeDefined();
  const { statuses, reasons, txids, log } = observed!;
  // Block b failed with its own error, not with a savepoint error of its sibling.
  expect({ statuses, reasons }).toEqual({
    statuses: ['fulfilled', 'rejected'],
    reasons: ['', 'block b failed'],
  });
  expectSerialized(log);
  expect(txids.outer).not.toBeNull();
  expect(txids).toEqual({ outer: txids.outer, a: txids.outer, b: txids.outer, after: txids.outer });
}

describe.each(enginesAndSqlite)('blocks on one session run one at a time ($name)', (current) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    engine = current;
    t = await createTestApp(current, { controllers: [BlocksController] });
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(async () => {
    engine = current;
    seen.observed = undefined;
    seen.statuses = undefined;
    seen.sent = [];
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  describe.each<[string, Kind]>([
    ['NESTED atomic blocks', 'nested'],
    ['manager.transaction() calls', 'transaction'],
  ])('two %s in one Promise.allSettled', (_label, kind) => {
    it('runInNewContext(): the failing one alone rolls back; outer, a and c commit in one transaction', async () => {
      const result = await settle(
        factory.runInNewContext(() => siblingBlocks(context, kind)),
        'runInNewContext()',
        8000,
      );
      expectResolved(result);
      expect(await t.texts()).toEqual(['a', 'c', 'outer']);
      expectSiblingOutcome((result as { value?: Observed }).value);
    });

    it('over HTTP: 201, the failing one alone rolls back; outer, a and c commit in one transaction', async () => {
      const response = await t.http().post(`/blocks/siblings/${kind}`).timeout(8000);
      expect(response.status).toBe(201);
      expect(await t.texts()).toEqual(['a', 'c', 'outer']);
      expectSiblingOutcome(seen.observed);
    });
  });

  describe('a failing REQUIRED block next to a failing NESTED block (NESTED started first)', () => {
    it('runInNewContext() fails with RollbackOnlyError and nothing is written', async () => {
      const statuses: string[][] = [];
      const result = await settle(
        factory.runInNewContext(async () => {
          statuses.push(await requiredBesideNested(context));
        }),
        'runInNewContext()',
      );
      expect(statuses).toEqual([['rejected', 'rejected']]);
      expect(await t.texts()).toEqual([]);
      expect(result).toMatchObject({ ok: false, name: 'RollbackOnlyError' });
    });

    it('over HTTP: 500 and nothing is written', async () => {
      const response = await t.http().post('/blocks/required-beside-nested').timeout(5000);
      expect(seen.statuses).toEqual(['rejected', 'rejected']);
      expect(await t.texts()).toEqual([]);
      expect(response.status).toBe(500);
    });
  });

  describe('a REQUIRED block that throws before its first query, caught by the handler', () => {
    it('after the handler inserted: 500, nothing written, the afterCommit callback never runs', async () => {
      const response = await t.http().post('/blocks/required-throws-first').timeout(5000);
      expect(await t.rows()).toBe(0);
      expect(seen.sent).toEqual([]);
      expect(response.status).toBe(500);
      const result = await settle(
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'ctx' });
          context.afterCommit(() => seen.sent.push('email'));
          await context
            .atomic(() => {
              throw new Error('x');
            })
            .catch(() => undefined);
        }),
        'runInNewContext()',
      );
      expect(await t.rows()).toBe(0);
      expect(seen.sent).toEqual([]);
      expect(result).toMatchObject({ ok: false, name: 'RollbackOnlyError' });
    });

    it('when the handler never queried: still 500 / RollbackOnlyError, and no callback', async () => {
      const response = await t.http().post('/blocks/required-throws-no-query').timeout(5000);
      expect(seen.sent).toEqual([]);
      expect(response.status).toBe(500);
      const result = await settle(
        factory.runInNewContext(async () => {
          context.afterCommit(() => seen.sent.push('email'));
          await context
            .atomic(() => {
              throw new Error('x');
            })
            .catch(() => undefined);
        }),
        'runInNewContext()',
      );
      expect(seen.sent).toEqual([]);
      expect(result).toMatchObject({ ok: false, name: 'RollbackOnlyError' });
      expect(await t.rows()).toBe(0);
    });
  });

  describe.each(['commit', 'rollback'] as const)(
    'sessionContext.%s() inside a NESTED block',
    (call) => {
      it('rejects (naming NESTED) and leaves the outer transaction alone: outer, inner and after rows commit', async () => {
        const inside: { outcome?: unknown; txid?: string | null } = {};
        const txids: Array<string | null> = [];
        const result = await settle(
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'outer' });
            txids.push(await txid(engine, session));
            await context.atomic(
              async (manager) => {
                await manager.insert(Example, { text: 'inner' });
                inside.outcome = await settle(context[call](), `sessionContext.${call}()`);
                inside.txid = await txid(engine, manager);
              },
              { propagation: Propagation.NESTED },
            );
            await session.insert(Example, { text: 'after' });
            txids.push(await txid(engine, session));
          }),
          'runInNewContext()',
        );
        expect(await t.texts()).toEqual(['after', 'inner', 'outer']);
        expectResolved(result);
        expect(inside.outcome).toMatchObject({
          ok: false,
          message: expect.stringMatching(/NESTED/),
        });
        // One transaction throughout: neither call ended it half-way.
        expect(txids[0]).not.toBeNull();
        expect([inside.txid, txids[1]]).toEqual([txids[0], txids[0]]);
      });
    },
  );
});
