import { Controller, Post } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { checkedOut, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** What the callbacks saw, in order: `<name>:<status> held=<connections checked out>`. */
const log: string[] = [];

@Controller('callbacks')
class CallbacksController {
  constructor(
    private readonly context: SessionContext,
    private readonly dataSource: DataSource,
  ) {}

  /** Registers all three kinds, tagged, each noting how many connections are checked out. */
  register(tag: string): void {
    const held = () => checkedOut(this.dataSource);
    this.context.afterCommit(() => log.push(`${tag} afterCommit held=${held()}`));
    this.context.afterRollback(() => log.push(`${tag} afterRollback held=${held()}`));
    this.context.afterCompletion((status) =>
      log.push(`${tag} afterCompletion:${status} held=${held()}`),
    );
  }

  @Post('commit')
  async commit() {
    await this.context.session().insert(Example, { text: 'committed' });
    this.register('request');
    return 'ok';
  }

  @Post('throw')
  async throws() {
    await this.context.session().insert(Example, { text: 'undone' });
    this.register('request');
    throw new Error('handler fails');
  }

  /** A NESTED block that rolls back inside a request that commits. */
  @Post('nested-rollback')
  async nestedRollback() {
    await this.context.session().insert(Example, { text: 'outer' });
    this.register('outer');
    await this.context
      .atomic(
        async (manager) => {
          await manager.insert(Example, { text: 'inner' });
          this.register('inner');
          throw new Error('inner fails');
        },
        { propagation: Propagation.NESTED },
      )
      .catch(() => undefined);
    return 'ok';
  }

  /** A callback that fails: what the client gets depends on `callbackErrors`. */
  @Post('failing-callback')
  async failingCallback() {
    await this.context.session().insert(Example, { text: 'committed' });
    this.context.afterCommit(() => {
      throw new Error('mail server down');
    });
    this.context.afterCommit(() => log.push('next ran'));
    return 'ok';
  }
}

describe.each(enginesAndSqlite)(
  'afterCommit, afterRollback and afterCompletion ($name)',
  (engine) => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine, { controllers: [CallbacksController] });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM example');
      log.length = 0;
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('a committed request runs afterCommit and afterCompletion, in order, with every connection back', async () => {
      await t.http().post('/callbacks/commit').expect(201);
      expect(log).toEqual([
        'request afterCommit held=0',
        'request afterCompletion:committed held=0',
      ]);
      expect(await t.texts()).toEqual(['committed']);
    });

    it('a failed request runs afterRollback and afterCompletion, never afterCommit', async () => {
      await t.http().post('/callbacks/throw').expect(500);
      expect(log).toEqual([
        'request afterRollback held=0',
        'request afterCompletion:rolled back held=0',
      ]);
      expect(await t.rows()).toBe(0);
    });

    it("a NESTED block rolled back to its savepoint runs its rollback callbacks at the outer transaction's end", async () => {
      await t.http().post('/callbacks/nested-rollback').expect(201);
      expect(log).toEqual([
        'outer afterCommit held=0',
        'outer afterCompletion:committed held=0',
        'inner afterRollback held=0',
        'inner afterCompletion:rolled back held=0',
      ]);
      expect(await t.texts()).toEqual(['outer']);
    });

    it('rollback-only, a failed COMMIT and an explicit rollback() run the rollback callbacks', async () => {
      const runs = [
        // rollback-only: a joined block failed and its error was caught
        () =>
          factory.runInNewContext(async () => {
            await context.session().insert(Example, { text: 'x' });
            context.afterRollback(() => log.push('rollback-only'));
            await context
              .atomic(() => Promise.reject(new Error('joined fails')))
              .catch(() => undefined);
          }),
        // the server refused the commit: PostgreSQL after a caught error, or a failing beforeCommit
        () =>
          factory.runInNewContext(async () => {
            const session = context.session();
            await session.insert(Example, { text: 'x' });
            context.afterRollback(() => log.push('refused'));
            await session.query('SELECT * FROM no_such_table').catch(() => undefined);
            if (engine.name !== 'postgres')
              throw new Error('MariaDB and SQLite keep the transaction: fail here');
          }),
        // an explicit rollback(), then the context commits what came after
        () =>
          factory.runInNewContext(async () => {
            await context.session().insert(Example, { text: 'x' });
            context.afterCommit(() => log.push('never'));
            context.afterRollback(() => log.push('explicit'));
            await context.rollback();
            expect(log).toEqual(['rollback-only', 'refused', 'explicit']);
          }),
      ];
      for (const run of runs) await run().catch(() => undefined);
      expect(log).toEqual(['rollback-only', 'refused', 'explicit']);
      expect(await t.rows()).toBe(0);
    });

    it('REQUIRES_NEW blocks and factory sessions run the callbacks of their own transaction', async () => {
      await factory.runInNewContext(async () => {
        await context.atomic(
          async (manager) => {
            await manager.insert(Example, { text: 'block' });
            context.afterCompletion((status) => log.push(`block ${status}`));
          },
          { propagation: Propagation.REQUIRES_NEW },
        );
        expect(log).toEqual(['block committed']);
        await factory
          .atomic(async (manager) => {
            await manager.insert(Example, { text: 'failed block' });
            context.afterRollback(() => log.push('factory block rolled back'));
            throw new Error('block fails');
          })
          .catch(() => undefined);
        expect(log).toEqual(['block committed', 'factory block rolled back']);
      });
      expect(await t.texts()).toEqual(['block']);
    });

    it('where no transaction is current (NOT_SUPPORTED) afterCommit and afterCompletion run, afterRollback never', async () => {
      await factory.runInNewContext(() =>
        context.atomic(
          async () => {
            context.afterCommit(() => log.push('commit'));
            context.afterRollback(() => log.push('rollback'));
            context.afterCompletion((status) => log.push(`completion ${status}`));
            await new Promise((resolve) => setTimeout(resolve, 20));
          },
          { propagation: Propagation.NOT_SUPPORTED },
        ),
      );
      expect(log).toEqual(['commit', 'completion committed']);
    });

    it('a failing callback is logged by default: the client gets 201, the commit stands and the next callback runs', async () => {
      await t.http().post('/callbacks/failing-callback').expect(201);
      expect(log).toEqual(['next ran']);
      expect(await t.texts()).toEqual(['committed']);
    });
  },
);

describe.each(enginesAndSqlite)("callbackErrors: 'throw' ($name)", (engine) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [CallbacksController],
      context: { callbackErrors: 'throw' },
    });
  });
  beforeEach(async () => {
    await t.dataSource.query('DELETE FROM example');
    log.length = 0;
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('fails the request after every callback ran; the commit stands', async () => {
    await t.http().post('/callbacks/failing-callback').expect(500);
    expect(log).toEqual(['next ran']);
    expect(await t.texts()).toEqual(['committed']);
  });

  it('rejects runInNewContext() with CallbackError whose cause is the callback error', async () => {
    const context = t.app.get(SessionContext);
    const error = await t.app
      .get(SessionFactory)
      .runInNewContext(async () => {
        await context.session().insert(Example, { text: 'committed' });
        context.afterCommit(() => {
          throw new Error('mail server down');
        });
      })
      .catch((caught: Error) => caught);
    expect(error).toMatchObject({ name: 'CallbackError', cause: { message: 'mail server down' } });
    expect(await t.texts()).toEqual(['committed']);
  });
});
