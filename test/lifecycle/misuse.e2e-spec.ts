import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Every way code reaches a session's connection, each returning a promise. */
function everyUse(manager: EntityManager): Array<[string, () => Promise<unknown>]> {
  return [
    ['manager.query()', () => manager.query('SELECT 1')],
    ['manager.find()', () => manager.find(Example)],
    ['repository.save()', () => manager.getRepository(Example).save({ text: 'late' })],
    ['manager.insert()', () => manager.insert(Example, { text: 'late' })],
    ['query builder', () => manager.createQueryBuilder(Example, 'e').getMany()],
    ['query builder stream', () => manager.createQueryBuilder(Example, 'e').stream()],
    ['manager.transaction()', () => manager.transaction((inner) => inner.find(Example))],
    ['queryRunner.connect()', () => manager.queryRunner!.connect()],
  ];
}

/** The error name each use rejected with (or 'resolved'). */
async function outcomes(manager: EntityManager): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const [name, use] of everyUse(manager)) {
    result[name] = await use().then(
      () => 'resolved',
      (error: Error) => error.name,
    );
  }
  return result;
}

const every = (name: string) =>
  Object.fromEntries(everyUse({} as EntityManager).map(([k]) => [k, name]));

describe.each(enginesAndSqlite)('one clear error per misuse ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine);
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('after close(): every way of using the session fails with SessionClosedError', async () => {
    let seen: Record<string, string> = {};
    await factory.runInNewContext(async () => {
      const session = context.session();
      await session.insert(Example, { text: 'closed' });
      await context.close();
      seen = await outcomes(session);
    });
    expect(seen).toEqual(every('SessionClosedError'));
    expect(await t.rows()).toBe(0);
  });

  it('after the context ended: every way (also from fire-and-forget code) fails with SessionContextEndedError', async () => {
    let kept: EntityManager | undefined;
    await factory.runInNewContext(async () => {
      kept = context.session();
      await kept.insert(Example, { text: 'committed' });
    });
    expect(await outcomes(kept!)).toEqual(every('SessionContextEndedError'));
    expect(await t.texts()).toEqual(['committed']);
  });

  it('a factory session after close(): SessionClosedError everywhere', async () => {
    const session = factory.open();
    await session.manager.insert(Example, { text: 'uncommitted' });
    await session.close();
    expect(await outcomes(session.manager)).toEqual(every('SessionClosedError'));
    expect(await t.rows()).toBe(0);
  });
});

describe('options are checked strictly, like Nest checks its own', () => {
  const decorate = (options: unknown) => () => {
    class Service {
      @Transactional(options as never)
      run() {
        return 1;
      }
    }
    return Service;
  };

  it.each([
    [
      'a typo',
      { propagaton: Propagation.REQUIRES_NEW },
      /'propagaton'.*'propagation' \(a typo\?\)/s,
    ],
    ['a string that names no propagation', 'REQUIRED_NEW', /a string is a propagation/],
    ['a number', 42, /Expected an object/],
    ['null', null, /Expected an object/],
    ['an array', [Propagation.NESTED], /Expected an object/],
    ['timeout NaN', { timeout: Number.NaN }, /timeout: NaN/],
    ['an unknown propagation', { propagation: 'SOMETIMES' }, /propagation: 'SOMETIMES'/],
  ])(
    '@Transactional() with %s fails at decoration with InvalidOptionError',
    (_what, options, message) => {
      expect(decorate(options)).toThrow(expect.objectContaining({ name: 'InvalidOptionError' }));
      expect(decorate(options)).toThrow(message);
    },
  );

  it('sessionFactory.atomic(fn, "REQUIRES_NEW") and sessionContext.atomic() reject without running fn', async () => {
    const t = await createTestApp(engines[0]!);
    try {
      let ran = 0;
      const run = () => {
        ran++;
      };
      const errors = await Promise.all([
        t.app
          .get(SessionFactory)
          .atomic(run, 'REQUIRES_NEW' as never)
          .catch((e: Error) => e.name),
        t.app
          .get(SessionFactory)
          .runInNewContext(() => t.app.get(SessionContext).atomic(run, { readonly: true } as never))
          .catch((e: Error) => e.name),
        Promise.resolve()
          .then(() => t.app.get(SessionFactory).open({ isolation: 'SERIALIZABLE' } as never))
          .catch((e: Error) => e.name),
      ]);
      expect(errors).toEqual(['InvalidOptionError', 'InvalidOptionError', 'InvalidOptionError']);
      expect(ran).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('module options: an unknown key fails at startup, naming it', async () => {
    await expect(
      createTestApp(engines[0]!, { context: { autocommit: false } as never }),
    ).rejects.toThrow(/'autocommit'.*'autoCommit' \(a typo\?\)/s);
  });
});
