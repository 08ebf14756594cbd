import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  type AfterQueryEvent,
  type BeforeQueryEvent,
  DataSource,
  type EntityManager,
  type EntitySubscriberInterface,
  EventSubscriber,
} from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { eventually, type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { checkedOut, engines, idleInTransaction } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectResolved, outcome, settle, within } from './support-a.js';

type QueryEvent = BeforeQueryEvent | AfterQueryEvent;

/** What the subscriber does while a test is active, per statement event. */
const probe: {
  active: boolean;
  events: string[];
  before?: (event: QueryEvent) => Promise<void>;
  after?: (event: QueryEvent) => Promise<void>;
} = { active: false, events: [] };

/** A subscriber of every statement's events, which runs the test's action for them. */
@EventSubscriber()
class QueryProbe implements EntitySubscriberInterface {
  async beforeQuery(event: BeforeQueryEvent) {
    if (probe.active) await probe.before?.(event);
  }
  async afterQuery(event: AfterQueryEvent) {
    if (probe.active) await probe.after?.(event);
  }
}

/** The first word(s) of a statement that ends or begins a transaction or savepoint, if it is one. */
function transactionStatement(sql: string): string | undefined {
  return /^(START TRANSACTION|BEGIN|COMMIT|ROLLBACK TO SAVEPOINT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT)/i.exec(
    sql,
  )?.[1];
}

/** Counts the rows of `example` through the event's own runner and records what it saw. */
function countOnInsert(when: string) {
  return async (event: QueryEvent) => {
    if (!/^INSERT/i.test(event.query)) return;
    const rows: Array<{ n: number | string }> = await event.queryRunner.query(
      'SELECT count(*) AS n FROM example',
    );
    probe.events.push(`${when} INSERT sees ${Number(rows[0]?.n)}`);
  };
}

/** Runs a statement through the event's runner after each statement that begins or ends a transaction. */
async function queryOnTransactionStatements(event: QueryEvent) {
  const statement = transactionStatement(event.query);
  if (statement === undefined) return;
  await event.queryRunner.query('SELECT 1 AS one');
  probe.events.push(`after ${statement.toUpperCase()}`);
}

/** The same work, done with plain TypeORM and through the library. */
const work: Array<[string, (manager: EntityManager) => Promise<void>]> = [
  ['one insert', (m) => m.insert(Example, { text: 'one' }).then(() => undefined)],
  [
    'an insert in a nested manager.transaction()',
    async (m) => {
      await m.insert(Example, { text: 'outer' });
      await m.transaction((inner) => inner.insert(Example, { text: 'inner' }));
    },
  ],
  [
    'an insert, then a nested manager.transaction() that fails, caught',
    async (m) => {
      await m.insert(Example, { text: 'outer' });
      await m
        .transaction(async (inner) => {
          await inner.insert(Example, { text: 'inner' });
          throw new Error('the inner work failed');
        })
        .catch(() => undefined);
    },
  ],
];

/**
 * A subscriber may query through `event.queryRunner` while it handles a statement's `beforeQuery`
 * or `afterQuery` event, as in plain TypeORM. Its statement is part of the statement whose event
 * it handles: it must not queue behind it (which waited forever).
 */
/**
 * TypeORM 0.3's MySQL runner sends its query events at other moments than 1.x's (a subscriber's
 * count after an INSERT, and a query after COMMIT, differ from plain TypeORM's there): the MariaDB
 * half of this spec holds from TypeORM 1.0 (docs/sessions.md says so).
 */
const typeormMajor = Number(
  (
    JSON.parse(readFileSync(join(process.cwd(), 'node_modules/typeorm/package.json'), 'utf8')) as {
      version: string;
    }
  ).version.split('.')[0],
);
const covered = engines.filter((engine) => engine.name === 'postgres' || typeormMajor >= 1);

describe.each(covered)('a subscriber that queries in a statement event ($name)', (engine) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  /** Runs `run` with the probe recording; returns what it recorded and how `run` ended. */
  async function recorded(run: () => Promise<unknown>, what: string) {
    probe.events = [];
    probe.active = true;
    try {
      const result = await settle(run(), what);
      return { events: [...probe.events], ok: result.ok, result };
    } finally {
      probe.active = false;
    }
  }

  /**
   * Runs `fn` in the library's three kinds of unit, each next to its plain TypeORM equivalent:
   * the subscriber must see, and the database keep, the same.
   */
  async function expectAsPlainTypeorm(fn: (manager: EntityManager) => Promise<void>) {
    const units: Array<[string, () => Promise<unknown>, () => Promise<unknown>]> = [
      [
        'runInNewContext()',
        () => factory.runInNewContext(() => fn(context.session())),
        () => t.dataSource.transaction(fn),
      ],
      ['sessionFactory.atomic()', () => factory.atomic(fn), () => t.dataSource.transaction(fn)],
      [
        'a NESTED block',
        () => factory.runInNewContext(() => context.session().transaction(fn)),
        () => t.dataSource.transaction((m) => m.transaction(fn)),
      ],
    ];
    for (const [what, run, plainRun] of units) {
      await t.dataSource.query('DELETE FROM example');
      const plain = await recorded(plainRun, `plain TypeORM for ${what}`);
      const rows = await t.texts();
      expect(plain.events.length).toBeGreaterThan(0);
      await t.dataSource.query('DELETE FROM example');
      const library = await recorded(run, what);
      if (plain.ok) expectResolved(library.result);
      else expect(library.result).toMatchObject({ ok: false, message: 'the work failed' });
      expect({ what, events: library.events }).toEqual({ what, events: plain.events });
      expect(await t.texts()).toEqual(rows);
    }
  }

  beforeEach(async () => {
    Object.assign(probe, { active: false, events: [], before: undefined, after: undefined });
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(engine), subscribers: [QueryProbe] }),
        TypeOrmContextModule.forRoot(),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    t = wrap(app, engine, app.get(DataSource));
    context = app.get(SessionContext);
    factory = app.get(SessionFactory);
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(async () => {
    probe.active = false;
    const clean = await outcome(
      eventually(
        async () =>
          checkedOut(t.dataSource) === 0 && (await idleInTransaction(engine, t.dataSource)) === 0,
        1000,
      ),
    );
    // Bounded: a session stuck behind its own statement would keep app.close() waiting forever.
    const shutDown = await outcome(within(t.close(), 'app.close()', 2000));
    expectResolved(clean);
    expectResolved(shutDown);
  });

  it('afterQuery queries after the ROLLBACK of a unit that fails', async () => {
    probe.after = queryOnTransactionStatements;
    await expectAsPlainTypeorm(async (m) => {
      await m.insert(Example, { text: 'one' });
      throw new Error('the work failed');
    });
  });

  it('inside a TestTransaction: the session, and the test body through the DataSource', async () => {
    probe.after = countOnInsert('after');
    const tx = await TestTransaction.start(t.app);
    try {
      const unit = await recorded(
        () => factory.runInNewContext(() => context.session().insert(Example, { text: 'unit' })),
        'runInNewContext() in the test transaction',
      );
      expectResolved(unit.result);
      expect(unit.events).toEqual(['after INSERT sees 1']);
      const body = await recorded(
        () => t.dataSource.query("INSERT INTO example (text) VALUES ('body')"),
        'dataSource.query() in the test transaction',
      );
      expectResolved(body.result);
      expect(body.events).toEqual(['after INSERT sees 2']);
    } finally {
      await settle(tx.rollback(), 'tx.rollback()');
    }
    expect(await t.rows()).toBe(0);
  });

  describe.each(work)('%s', (_label, fn) => {
    it('afterQuery counts the rows through event.queryRunner', async () => {
      probe.after = countOnInsert('after');
      await expectAsPlainTypeorm(fn);
    });

    it('beforeQuery counts the rows through event.queryRunner', async () => {
      probe.before = countOnInsert('before');
      await expectAsPlainTypeorm(fn);
    });

    it('afterQuery queries after the statements that begin and end transactions and savepoints', async () => {
      probe.after = queryOnTransactionStatements;
      await expectAsPlainTypeorm(fn);
    });
  });
});
