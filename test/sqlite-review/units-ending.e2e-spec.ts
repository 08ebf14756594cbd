import { Injectable } from '@nestjs/common';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TransactionTimeoutError,
} from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 600;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class BlockService {
  constructor(private readonly context: SessionContext) {}

  /** Times out (150 ms) while it still waits for its turn behind a longer unit. */
  @Transactional({ timeout: 150 })
  async quick(text: string) {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async independent(text: string) {
    await this.context.session().insert(Example, { text });
  }
}

/** Attack: units that end (timeout, context end, commit) while statements or turn-waits are pending. */
describe.each(sqliteEngines)('SQLite review: units ending mid-wait ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeEach(async () => {
    t = await createTestApp(engine, {
      context: { acquireTimeout: ACQUIRE },
      providers: [BlockService],
    });
    factory = t.app.get(SessionFactory);
    context = t.app.get(SessionContext);
  });

  afterEach(() => t.close());

  const unit = (text: string, ms = 0) =>
    factory.runInNewContext(async () => {
      await context.session().insert(Example, { text });
      if (ms > 0) await sleep(ms);
    });

  it('a timeout that fires while the block waits for its turn: the late turn is handed on, in order', async () => {
    const holder = unit('holder', 300);
    await sleep(20);
    const timedOut = t.app
      .get(BlockService)
      .quick('timed out')
      .catch((error: Error) => error);
    await sleep(20);
    const after = unit('after');
    expect(await timedOut).toBeInstanceOf(TransactionTimeoutError);
    await holder;
    await after;
    expect(await t.texts()).toEqual(['after', 'holder']);
    await t.expectClean();
  });

  it('a context that ends with a statement not awaited: the turn is given back', async () => {
    await factory
      .runInNewContext(async () => {
        await context.session().insert(Example, { text: 'awaited' });
        void context
          .session()
          .insert(Example, { text: 'not awaited' })
          .catch(() => undefined);
      })
      .catch(() => undefined);
    await unit('next');
    await t.dataSource.query("INSERT INTO example (text) VALUES ('plain')");
    expect(await t.texts()).toEqual(expect.arrayContaining(['next', 'plain']));
    await t.expectClean();
  });

  it('sessionContext.commit() gives the turn back: a REQUIRES_NEW block after it runs', async () => {
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'committed first' });
      await context.commit();
      await t.app.get(BlockService).independent('independent');
      await context.session().insert(Example, { text: 'then more' });
    });
    expect(await t.texts()).toEqual(['committed first', 'independent', 'then more']);
    await t.expectClean();
  });

  it('sessionFactory.open(): a session closed without commit gives its turn back', async () => {
    const session = factory.open();
    await session.manager.insert(Example, { text: 'never committed' });
    await session.close();
    await unit('next');
    expect(await t.texts()).toEqual(['next']);
    await t.expectClean();
  });
});
