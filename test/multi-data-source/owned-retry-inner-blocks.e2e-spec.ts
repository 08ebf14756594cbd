import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { closeApp, HANG_MS, within } from '../correctness/support-b.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** What the driver says for a deadlock (PostgreSQL 40P01), as isRetryableError reads it. */
const deadlock = () =>
  Object.assign(new Error('deadlock detected'), { code: '40P01', errno: 1213 });

/** The error a call rejected with, or undefined if it resolved. */
const settled = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

/*
 * "A block of which anything committed is never re-run" (docs/transactions.md, retry): what a
 * REQUIRES_NEW / sessionFactory.atomic() block inside an owned block committed is part of what the
 * owned block committed. A failure after it makes the owned block reject with
 * PartlyCommittedError, never re-run (which would commit the inner block once per attempt).
 */
describe.each(engines)('owned blocks with retry around inner blocks ($name)', (engine: Engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    t = await createTestApp(engine);
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  it('a committed REQUIRES_NEW block inside an owned block with retry: a deadlock after it does not re-run (and re-commit) it', async () => {
    let runs = 0;
    const outcome = await within(
      HANG_MS,
      'an owned block with retry around a committed REQUIRES_NEW block',
      settled(
        factory.atomic(
          async () => {
            runs++;
            await factory.atomic((inner) => inner.insert(Example, { text: 'inner' }));
            throw deadlock();
          },
          { retry: 2 },
        ),
      ),
    );
    expect(await t.texts()).toEqual(['inner']);
    expect(runs).toBe(1);
    expect(outcome).toMatchObject({ name: 'PartlyCommittedError', cause: { code: '40P01' } });
  });

  it('two levels down: a block committed inside a block inside the retried one also stops the retry', async () => {
    let runs = 0;
    const outcome = await within(
      HANG_MS,
      'an owned block with retry around a block around a committed REQUIRES_NEW block',
      settled(
        factory.atomic(
          async () => {
            runs++;
            // The middle block catches the inner one's commit... and fails without retry of its own.
            await factory
              .atomic(async () => {
                await factory.atomic((inner) => inner.insert(Example, { text: 'inner' }));
                throw new Error('middle failed');
              })
              .catch(() => undefined);
            throw deadlock();
          },
          { retry: 2 },
        ),
      ),
    );
    expect(await t.texts()).toEqual(['inner']);
    expect(runs).toBe(1);
    expect(outcome).toMatchObject({ name: 'PartlyCommittedError' });
  });

  it('a REQUIRES_NEW block that rolled back does not count: the block around it is re-run', async () => {
    let runs = 0;
    const outcome = await within(
      HANG_MS,
      'an owned block with retry around a rolled back REQUIRES_NEW block',
      settled(
        factory.atomic(
          async (manager) => {
            runs++;
            await factory
              .atomic(async (inner) => {
                await inner.insert(Example, { text: `rolled back ${runs}` });
                throw new Error('inner failed');
              })
              .catch(() => undefined);
            await manager.insert(Example, { text: `outer ${runs}` });
            if (runs < 3) throw deadlock();
          },
          { retry: 2 },
        ),
      ),
    );
    expect(outcome).toBeUndefined();
    expect(runs).toBe(3);
    expect(await t.texts()).toEqual(['outer 3']);
  });

  it('a request unit is unaffected: a block committed in it earlier does not stop the retry of a later block', async () => {
    let runs = 0;
    const outcome = await within(
      HANG_MS,
      'a unit with a committed REQUIRES_NEW block, then a retried block',
      settled(
        factory.runInNewContext(async () => {
          await context.session().insert(Example, { text: 'unit' });
          await context.atomic((inner) => inner.insert(Example, { text: 'committed' }), {
            propagation: Propagation.REQUIRES_NEW,
          });
          await context.atomic(
            async (manager) => {
              runs++;
              await manager.insert(Example, { text: `retried ${runs}` });
              if (runs < 2) throw deadlock();
            },
            { propagation: Propagation.REQUIRES_NEW, retry: 2 },
          );
        }),
      ),
    );
    expect(outcome).toBeUndefined();
    expect(runs).toBe(2);
    expect(await t.texts()).toEqual(['committed', 'retried 2', 'unit']);
  });
});
