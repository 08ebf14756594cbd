import { Global, Injectable, Module, type OnModuleInit } from '@nestjs/common';
import { SessionContext, Transactional } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle } from './support-a.js';
import { partners, startApp } from './two-apps-support.js';

/**
 * Found in the review of "no process-wide mutable state" (98b7a94): the runtime binds the instances in ITS
 * `onModuleInit`, and Nest runs the modules' hooks in order of distance, global modules first in
 * import order. A provider of a global module imported before `TypeOrmContextModule.forRoot()`
 * (a shared CoreModule that seeds reference data) runs its `onModuleInit` before the runtime
 * bound anything: its @Transactional() seed fails, and app.init() with it, with a message that
 * says "a call before app.init()" and "call it after app.init()". Its data source is ready at that
 * point (repositories work there, docs/repositories.md: "outside any context (a script,
 * `onModuleInit`, ...)"), and README promises that outside any context @Transactional() "opens a
 * context for the call". Expected: the seed runs on the app that created the service.
 * (Not a regression of 98b7a94, which only renamed the failure; with two apps, before it, the
 * seed of the second app ran on the FIRST app's database.)
 */

@Injectable()
class Seeder implements OnModuleInit {
  constructor(private readonly context: SessionContext) {}

  async onModuleInit(): Promise<void> {
    await this.seed();
  }

  @Transactional()
  async seed(): Promise<void> {
    await this.context.session().insert(Example, { text: 'seeded' });
  }
}

@Global()
@Module({ providers: [Seeder], exports: [Seeder] })
class CoreModule {}

describe.each(partners)(
  'two apps: @Transactional() in onModuleInit; app A on PostgreSQL, app B (started first) on %s',
  (_name, partner) => {
    let a: TestApp | undefined;
    let b: TestApp | undefined;

    afterEach(async () => {
      await a?.close();
      await b?.close();
      a = b = undefined;
    });

    it('a global module imported before TypeOrmContextModule seeds in onModuleInit, on its own app', async () => {
      b = await startApp(await partner());
      // startApp() empties `example` after init: count the seed through a hook that runs later.
      const started = await settle(
        startApp(engines[0]!, { importsFirst: [CoreModule] }).then((app) => (a = app)),
        "app A's init",
      );
      expect(started.ok ? 'ok' : `${started.name}: ${started.message}`).toBe('ok');
      // Seeded on A (the row was emptied by startApp, so seed again now to see where it goes).
      await a!.app.get(Seeder).seed();
      expect(await a!.texts()).toEqual(['seeded']);
      expect(await b.rows()).toBe(0);
    });
  },
);
