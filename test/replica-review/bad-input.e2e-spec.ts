import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  InvalidOptionError,
  NoSessionContextError,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { pair } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { createR22App, type R22App } from './r22-app.js';

/** Whether `call` throws synchronously (a method that returns a promise should reject instead). */
function outcome(call: () => unknown): unknown {
  try {
    const result = call();
    if (result instanceof Promise) result.catch(() => undefined);
    return result;
  } catch (error) {
    return `sync throw: ${(error as Error).constructor.name}: ${(error as Error).message}`;
  }
}

async function startWith(context: unknown): Promise<unknown> {
  try {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          replication: { master: { url: pair().primary }, slaves: [{ url: pair().replica }] },
          entities: [ReplicaItem],
        }),
        TypeOrmContextModule.forRoot(context as TypeOrmContextModuleOptions),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    await app.close();
    return 'started';
  } catch (error) {
    return error;
  }
}

describe('Replica review: bad input to consistency tokens', () => {
  let r: R22App;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeAll(async () => {
    r = await createR22App({ context: { consistency: { header: 'x-ct' } } });
    factory = r.app.get(SessionFactory);
    context = r.app.get(SessionContext);
  });
  afterAll(() => r.close());

  it.each([
    ['a number', 42],
    ['an object', { default: '0/1' }],
    ['junk', 'default=0/1;'],
    ['an empty string', ''],
  ])(
    'runInNewContext({ consistencyToken: %s }) rejects with InvalidOptionError',
    async (_, token) => {
      const result = outcome(() =>
        factory.runInNewContext(async () => 1, { consistencyToken: token as string }),
      );
      expect(result).toBeInstanceOf(Promise);
      await expect(result).rejects.toBeInstanceOf(InvalidOptionError);
    },
  );

  it.each([
    ['null', null],
    ['a string', 'default=0/1'],
    ['an unknown key', { consistencyToken: 'default=0/1', wait: 10 }],
  ])('runInNewContext(fn, %s) rejects', async (_, options) => {
    const result = outcome(() => factory.runInNewContext(async () => 1, options as never));
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toBeInstanceOf(Error);
  });

  it('sessionFactory.atomic() with a bad option: for comparison, it rejects', async () => {
    const result = outcome(() => factory.atomic(async () => 1, { bogus: 1 } as never));
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toBeInstanceOf(Error);
  });

  it('consistentWith(): junk throws InvalidOptionError; outside a unit NoSessionContextError', async () => {
    await factory.runInNewContext(() => {
      expect(() => context.consistentWith('nope')).toThrow(InvalidOptionError);
      expect(() => context.consistentWith(12 as never)).toThrow(InvalidOptionError);
      expect(() => context.consistentWith(undefined)).not.toThrow();
      // An unknown data source and a repeated entry are a token; the furthest position counts.
      context.consistentWith('elsewhere=0/1&default=0/10&default=0/2');
      expect(context.consistencyToken()).toBe('elsewhere=0/1&default=0/10');
    });
    expect(() => context.consistentWith('default=0/1')).toThrow(NoSessionContextError);
    expect(() => context.consistencyToken()).toThrow(NoSessionContextError);
  });

  it.each([
    ['wait: -1', { consistency: { wait: -1 } }],
    ['wait: NaN', { consistency: { wait: Number.NaN } }],
    ['refresh: 0', { consistency: { refresh: 0 } }],
    ['behind: maybe', { consistency: { behind: 'maybe' } }],
    ['header with a space', { consistency: { header: 'x token' } }],
    ['cookie with a semicolon', { consistency: { cookie: 'a;b' } }],
    ['header: true', { consistency: { header: true } }],
    ['an unknown key', { consistency: { headers: 'x' } }],
    ['consistency: null', { consistency: null }],
    ['maxReplicaLag: -5', { maxReplicaLag: -5 }],
    ['maxReplicaLag: Infinity', { maxReplicaLag: Number.POSITIVE_INFINITY }],
    ["maxReplicaLag: '100'", { maxReplicaLag: '100' }],
  ])('module option %s is refused at startup', async (_, options) => {
    expect(await startWith(options)).toBeInstanceOf(InvalidOptionError);
  });
});
