import {
  Controller,
  Injectable,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  Post,
  Scope,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import {
  ModuleNotInitializedError,
  SessionContext,
  SessionContextMiddleware,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { within } from './support-a.js';

/** The same class in both apps: `@Transactional()` must run on the app that created the instance. */
@Injectable()
class Writer {
  constructor(private readonly context: SessionContext) {}

  @Transactional()
  async write(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }

  @Transactional()
  async writeThenFail(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
    throw new Error('failed after writing');
  }
}

/** A request-scoped instance: Nest creates it per request, after the app started. */
@Injectable({ scope: Scope.REQUEST })
class RequestWriter extends Writer {}

/** A transient instance: one per consumer. */
@Injectable({ scope: Scope.TRANSIENT })
class TransientWriter extends Writer {}

@Injectable()
class TransientUser {
  constructor(readonly writer: TransientWriter) {}
}

@Controller('two-apps')
class WriteController {
  constructor(private readonly writer: RequestWriter) {}

  @Post('request-scoped')
  async requestScoped(): Promise<string> {
    await this.writer.write('request-scoped');
    return 'ok';
  }
}

/** A second PostgreSQL database on the suite's server, for an app of its own. */
async function secondPostgres(): Promise<Engine> {
  const server = process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL!;
  const admin = new Client({ connectionString: server });
  await admin.connect();
  try {
    const found = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'two_apps'");
    if (found.rowCount === 0) await admin.query('CREATE DATABASE two_apps');
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = '/two_apps';
  const postgres = engines[0]!;
  return { ...postgres, options: { ...postgres.options, url: url.toString() } };
}

/** Mounts the library's middleware class itself, as an app with `middleware: false` does. */
@Module({ controllers: [WriteController], providers: [RequestWriter] })
class OwnMiddlewareModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(SessionContextMiddleware).forRoutes(WriteController);
  }
}

async function startApp(engine: Engine, ownMiddleware = false): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine)),
      TypeOrmContextModule.forRoot({ middleware: !ownMiddleware }),
      ...(ownMiddleware ? [OwnMiddlewareModule] : []),
    ],
    controllers: ownMiddleware ? [] : [WriteController],
    providers: [Writer, RequestWriter, TransientWriter, TransientUser],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return wrap(app, engine, dataSource);
}

const partners: Array<[string, () => Promise<Engine>]> = [
  ['a second PostgreSQL database', secondPostgres],
  ...engines
    .slice(1)
    .map((engine): [string, () => Promise<Engine>] => [engine.name, async () => engine]),
];

describe.each(partners)(
  'two Nest apps in one process: app A on PostgreSQL, app B on %s',
  (_name, partner) => {
    let a: TestApp;
    let b: TestApp;
    let bClosed: boolean;

    beforeEach(async () => {
      a = await startApp(engines[0]!);
      b = await startApp(await partner()); // B initializes last
      bClosed = false;
    });

    afterEach(async () => {
      await a.close();
      if (!bClosed) await b.close();
    });

    it("outside any context, each app's @Transactional() method writes into its own database", async () => {
      await within(a.app.get(Writer).write('from A'), 'A.write()');
      await within(b.app.get(Writer).write('from B'), 'B.write()');
      expect(await a.texts()).toEqual(['from A']);
      expect(await b.texts()).toEqual(['from B']);
    });

    it("a failing @Transactional() method of A rolls back in A's database and leaves B's alone", async () => {
      await expect(a.app.get(Writer).writeThenFail('lost')).rejects.toThrow('failed after writing');
      expect(await a.rows()).toBe(0);
      expect(await b.rows()).toBe(0);
    });

    it("after app B closed, app A's @Transactional() method still works on A's database", async () => {
      await b.close();
      bClosed = true;
      await within(a.app.get(Writer).write('after B closed'), 'A.write()');
      expect(await a.texts()).toEqual(['after B closed']);
    });

    it("after app A closed, A's method says A has shut down while B's keeps working", async () => {
      const writerOfA = a.app.get(Writer);
      await a.app.close();
      a = { ...a, close: async () => undefined };
      const late = writerOfA.write('too late');
      await expect(late).rejects.toBeInstanceOf(ModuleNotInitializedError);
      await expect(late).rejects.toThrow(/has shut down/);
      await within(b.app.get(Writer).write('B still works'), 'B.write()');
      expect(await b.texts()).toEqual(['B still works']);
    });

    it("a request of A runs A's request-scoped @Transactional() service on A's database", async () => {
      await a.http().post('/two-apps/request-scoped').expect(201);
      await b.http().post('/two-apps/request-scoped').expect(201);
      expect(await a.texts()).toEqual(['request-scoped']);
      expect(await b.texts()).toEqual(['request-scoped']);
    });

    it("with SessionContextMiddleware mounted by the app, a request's context is that app's", async () => {
      const own = await startApp(engines[0]!, true);
      try {
        await own.http().post('/two-apps/request-scoped').expect(201);
        expect(await own.texts()).toEqual(['request-scoped']);
        expect(await b.rows()).toBe(0);
      } finally {
        await own.close();
      }
    });

    it('transient instances run on the app that created them', async () => {
      await within(a.app.get(TransientUser).writer.write('transient A'), 'A.write()');
      await within(b.app.get(TransientUser).writer.write('transient B'), 'B.write()');
      expect(await a.texts()).toEqual(['transient A']);
      expect(await b.texts()).toEqual(['transient B']);
    });

    it("B's method called inside a context of A runs in a context of B's own, never in A's unit", async () => {
      const failing = a.app.get(SessionFactory).runInNewContext(async () => {
        await a.app.get(SessionContext).session().insert(Example, { text: 'A, rolled back' });
        await b.app.get(Writer).write('B, committed by B');
        throw new Error('A fails after calling B');
      });
      await expect(within(failing, 'A context')).rejects.toThrow('A fails after calling B');
      expect(await a.rows()).toBe(0);
      expect(await b.texts()).toEqual(['B, committed by B']);
    });

    it("A's code inside a context B opened within A's context still runs in A's context", async () => {
      const failing = a.app.get(SessionFactory).runInNewContext(async () => {
        await b.app.get(SessionFactory).runInNewContext(async () => {
          await b.app.get(SessionContext).session().insert(Example, { text: 'B' });
          await a.app.get(SessionContext).session().insert(Example, { text: 'A, inside B' });
        });
        throw new Error('A fails after B committed');
      });
      await expect(within(failing, 'A context')).rejects.toThrow('A fails after B committed');
      expect(await a.rows()).toBe(0);
      expect(await b.texts()).toEqual(['B']);
    });

    it('inside a context of A, a session of B is not current: B says there is no context', async () => {
      await a.app.get(SessionFactory).runInNewContext(async () => {
        await a.app.get(SessionContext).session().insert(Example, { text: 'A' });
        expect(b.app.get(SessionContext).isActive()).toBe(false);
        expect(() => b.app.get(SessionContext).session()).toThrow(/No session context/);
      });
      expect(await a.texts()).toEqual(['A']);
      expect(await b.rows()).toBe(0);
    });

    it('an instance made with `new` outside any context fails with how to fix it', async () => {
      const made = new Writer(a.app.get(SessionContext));
      const call = made.write('nowhere');
      await expect(call).rejects.toBeInstanceOf(ModuleNotInitializedError);
      await expect(call).rejects.toThrow(/Writer\.write\(\).*runInNewContext/);
      expect(await a.rows()).toBe(0);
      expect(await b.rows()).toBe(0);
    });

    it("an instance made with `new` inside a context of A runs on A's runtime", async () => {
      const made = new Writer(a.app.get(SessionContext));
      await a.app.get(SessionFactory).runInNewContext(() => made.write('new, in A'));
      expect(await a.texts()).toEqual(['new, in A']);
      expect(await b.rows()).toBe(0);
    });
  },
);
