import { Controller, Injectable, Post, Scope } from '@nestjs/common';
import {
  AutoCommitInterceptor,
  type ClosableResponse,
  openRequestContext,
  SessionContext,
  Transactional,
} from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { partners, startApp } from './two-apps-support.js';

/**
 * Found in the review of "no process-wide mutable state" (98b7a94): instances Nest creates after startup
 * (request-scoped ones, and every provider that depends on one) are not bound to an app; they
 * run on "the app whose context the call is in", read from the unit of the current frame. Two
 * places where the call IS in an app's work but that lookup finds no app:
 *
 * 1. An afterCommit callback of a request: it runs in a frame without a unit (the one that follows
 *    the request's unit), so a request-scoped service's @Transactional() method there fails with
 *    ModuleNotInitializedError, while docs/transactions.md promises that "a @Transactional()
 *    method ... called from the callback opens and commits a transaction of its own". (Before
 *    98b7a94 it ran on the app initialized last: fine with one app, B's database with two.)
 * 2. `AutoCommitInterceptor` used as an instance (`app.useGlobalInterceptors(new
 *    AutoCommitInterceptor())`, the usual Nest way) has no runtime: the unit it opens belongs to no
 *    app, so a request-scoped @Transactional() method inside the request fails, and another app's
 *    bound method JOINS this app's unit (its write is rolled back with this app's request).
 */

/** A request-scoped service: its @Transactional() outbox write runs after the commit. */
@Injectable({ scope: Scope.REQUEST })
class Orders {
  constructor(private readonly context: SessionContext) {}

  async place(): Promise<void> {
    await this.context.session().insert(Example, { text: 'order' });
    this.context.afterCommit(() => this.outbox());
  }

  @Transactional()
  async outbox(): Promise<void> {
    await this.context.session().insert(Example, { text: 'outbox' });
  }

  @Transactional()
  async write(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }
}

/** Singleton (bound at startup) writer, for the other app. */
@Injectable()
class Writer {
  constructor(private readonly context: SessionContext) {}

  @Transactional()
  async write(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }
}

/** Set per test: what a request of app A calls of app B. */
let other: (() => Promise<void>) | undefined;

@Controller('two-apps')
class OrdersController {
  constructor(private readonly orders: Orders) {}

  @Post('place')
  async place(): Promise<string> {
    await this.orders.place();
    return 'ok';
  }

  @Post('write')
  async write(): Promise<string> {
    await this.orders.write('request-scoped');
    return 'ok';
  }

  @Post('other-then-fail')
  async otherThenFail(): Promise<string> {
    await other?.();
    throw new Error('A fails after calling B');
  }
}

describe.each(partners)(
  'two apps: request-scoped work of app A, app A on PostgreSQL, app B on %s',
  (_name, partner) => {
    let a: TestApp | undefined;
    let b: TestApp | undefined;

    afterEach(async () => {
      other = undefined;
      await a?.close();
      await b?.close();
      a = b = undefined;
    });

    it("a request-scoped @Transactional() method called from the request's afterCommit commits on its own", async () => {
      a = await startApp(engines[0]!, { controllers: [OrdersController], providers: [Orders] });
      b = await startApp(await partner(), { controllers: [OrdersController], providers: [Orders] });
      await a.http().post('/two-apps/place').expect(201);
      // Expected: the order and the outbox row, both in A's database. Before the fix, the callback fails
      // (logged: "Orders.outbox() is @Transactional() but runs on an instance that no
      // initialized Nest application created") and the outbox row is never written.
      // (The callbacks run before the response is sent: docs/auto-commit.md.)
      expect(await a.texts()).toEqual(['order', 'outbox']);
      expect(await b.rows()).toBe(0);
    });

    it('with `new AutoCommitInterceptor()` as the global interceptor, a request-scoped @Transactional() method works', async () => {
      a = await startApp(engines[0]!, {
        controllers: [OrdersController],
        providers: [Orders],
        context: { middleware: false, autoCommit: false },
        configure: (app) => app.useGlobalInterceptors(new AutoCommitInterceptor()),
      });
      // Expected: 201 and the row in A's database. Before the fix: 500, ModuleNotInitializedError.
      await a.http().post('/two-apps/write').expect(201);
      expect(await a.texts()).toEqual(['request-scoped']);
    });

    it('with `openRequestContext()` mounted by hand without a runtime, a request-scoped @Transactional() method works', async () => {
      a = await startApp(engines[0]!, {
        controllers: [OrdersController],
        providers: [Orders],
        context: { middleware: false },
        configure: (app) =>
          app.use((request: unknown, response: ClosableResponse, next: () => void) =>
            openRequestContext(request, response, next),
          ),
      });
      b = await startApp(await partner(), { providers: [Writer] });
      // Expected: the context belongs to the first app that uses it (A's interceptor claims it).
      // Before the fix: 500, ModuleNotInitializedError (the unit belonged to no app).
      await a.http().post('/two-apps/write').expect(201);
      expect(await a.texts()).toEqual(['request-scoped']);
      const writerOfB = b.app.get(Writer);
      other = () => writerOfB.write('B, committed by B');
      // And B's method called in that request never joins it.
      await a.http().post('/two-apps/other-then-fail').expect(500);
      expect(await b.texts()).toEqual(['B, committed by B']);
      expect(await a.texts()).toEqual(['request-scoped']);
    });

    it("with `new AutoCommitInterceptor()`, app B's method called in A's request never joins A's unit", async () => {
      a = await startApp(engines[0]!, {
        controllers: [OrdersController],
        providers: [Orders],
        context: { middleware: false, autoCommit: false },
        configure: (app) => app.useGlobalInterceptors(new AutoCommitInterceptor()),
      });
      b = await startApp(await partner(), { providers: [Writer] });
      const writerOfB = b.app.get(Writer);
      other = () => writerOfB.write('B, committed by B');
      // Expected (docs/transactions.md): B's method opens a context of B's own, committed on its
      // own, whatever A's request does next. Before the fix, it joins A's unit (which belongs to no app)
      // and B's row is rolled back with A's failing request.
      await a.http().post('/two-apps/other-then-fail').expect(500);
      expect(await b.texts()).toEqual(['B, committed by B']);
      expect(await a.rows()).toBe(0);
    });
  },
);
