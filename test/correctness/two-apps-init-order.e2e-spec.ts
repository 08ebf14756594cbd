import {
  Global,
  Injectable,
  Module,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { SessionContext, Transactional } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle } from './support-a.js';
import { partners, startApp } from './two-apps-support.js';

/**
 * An app records the instances with `@Transactional()` methods in TypeOrmContextModule's own
 * `onModuleInit`; Nest runs a `@Global()` module imported before `TypeOrmContextModule.forRoot()`
 * first. Nothing process-wide guesses the app for a call from there (with two apps in the process,
 * a guess wrote into the other app's database): the call fails with a message that says to seed
 * from `onApplicationBootstrap`, and from there the seed runs on its own app.
 */

@Injectable()
class EarlySeeder implements OnModuleInit {
  constructor(private readonly context: SessionContext) {}

  async onModuleInit(): Promise<void> {
    await this.seed();
  }

  @Transactional()
  async seed(): Promise<void> {
    await this.context.session().insert(Example, { text: 'seeded' });
  }
}

@Injectable()
class BootstrapSeeder implements OnApplicationBootstrap {
  seeded = false;

  constructor(private readonly context: SessionContext) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.seed();
    this.seeded = true;
  }

  @Transactional()
  async seed(): Promise<void> {
    await this.context.session().insert(Example, { text: 'seeded' });
  }
}

@Global()
@Module({ providers: [EarlySeeder], exports: [EarlySeeder] })
class EarlyModule {}

@Global()
@Module({ providers: [BootstrapSeeder], exports: [BootstrapSeeder] })
class BootstrapModule {}

describe.each(partners)(
  'two apps: @Transactional() while an app starts; app A on PostgreSQL, app B (started first) on %s',
  (_name, partner) => {
    let a: TestApp | undefined;
    let b: TestApp | undefined;

    afterEach(async () => {
      await a?.close();
      await b?.close();
      a = b = undefined;
    });

    it('from an onModuleInit that runs before the module records its instances: a clear error, nothing written anywhere', async () => {
      b = await startApp(await partner());
      const started = await settle(
        startApp(engines[0]!, { importsFirst: [EarlyModule] }).then((app) => (a = app)),
        "app A's init",
      );
      expect(started.ok).toBe(false);
      if (started.ok) return;
      expect(started.name).toBe('ModuleNotInitializedError');
      expect(started.message).toContain('onApplicationBootstrap');
      expect(await b.rows()).toBe(0);
    });

    it('from onApplicationBootstrap: the seed runs on its own app', async () => {
      b = await startApp(await partner());
      a = await startApp(engines[0]!, { importsFirst: [BootstrapModule] });
      expect(a.app.get(BootstrapSeeder).seeded).toBe(true);
      // startApp() empties `example` after init: seed again to see where it goes.
      await a.app.get(BootstrapSeeder).seed();
      expect(await a.texts()).toEqual(['seeded']);
      expect(await b.rows()).toBe(0);
    });
  },
);
