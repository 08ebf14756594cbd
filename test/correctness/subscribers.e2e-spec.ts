import { Controller, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  DataSource,
  type EntityManager,
  type EntitySubscriberInterface,
  EventSubscriber,
  type QueryRunner,
} from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { eventually, type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { checkedOut, type Engine, engines, idleInTransaction } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectResolved, outcome, settle, within } from './support-a.js';

/** TypeORM's six transaction events, by the subscriber method that receives them. */
const EVENTS = [
  'beforeTransactionStart',
  'afterTransactionStart',
  'beforeTransactionCommit',
  'afterTransactionCommit',
  'beforeTransactionRollback',
  'afterTransactionRollback',
] as const;
type EventName = (typeof EVENTS)[number];

/** What the subscriber gets: the runner (and its manager) of the transaction. */
interface TransactionEvent {
  queryRunner: QueryRunner;
  manager: EntityManager;
}

/**
 * What the subscriber does while a test is active: it records every event it receives, then runs
 * the test's action for that event (which may query through the event's runner or manager).
 */
const probe: {
  active: boolean;
  events: string[];
  actions: Partial<Record<EventName, (event: TransactionEvent) => Promise<unknown>>>;
} = { active: false, events: [], actions: {} };

async function receive(name: EventName, event: TransactionEvent): Promise<void> {
  if (!probe.active) return;
  probe.events.push(name);
  await probe.actions[name]?.(event);
}

/** An entity subscriber listening to every transaction event of its data source. */
@EventSubscriber()
class TransactionProbe implements EntitySubscriberInterface {
  beforeTransactionStart(event: TransactionEvent) {
    return receive('beforeTransactionStart', event);
  }
  afterTransactionStart(event: TransactionEvent) {
    return receive('afterTransactionStart', event);
  }
  beforeTransactionCommit(event: TransactionEvent) {
    return receive('beforeTransactionCommit', event);
  }
  afterTransactionCommit(event: TransactionEvent) {
    return receive('afterTransactionCommit', event);
  }
  beforeTransactionRollback(event: TransactionEvent) {
    return receive('beforeTransactionRollback', event);
  }
  afterTransactionRollback(event: TransactionEvent) {
    return receive('afterTransactionRollback', event);
  }
}

/** Rows of `example` as the event's own connection sees them (or the error it got). */
async function countThrough(runner: QueryRunner): Promise<string> {
  try {
    const rows: Array<{ n: number | string }> = await runner.query(
      'SELECT count(*) AS n FROM example',
    );
    return String(Number(rows[0]?.n));
  } catch (error) {
    return `error ${(error as Error).name}`;
  }
}

/** An action for `name` that counts rows through the event's runner and records what it saw. */
function recordCount(name: EventName) {
  return async (event: TransactionEvent) => {
    probe.events.push(`${name} sees ${await countThrough(event.queryRunner)}`);
  };
}

let engine: Engine;

@Controller('subscribers')
class SubscribersController {
  constructor(private readonly context: SessionContext) {}

  @Post('insert')
  async insert() {
    await this.context.session().insert(Example, { text: 'row' });
    return 'ok';
  }

  @Post('fail')
  async fail() {
    await this.context.session().insert(Example, { text: 'row' });
    throw new Error('the handler failed');
  }

  /** Reads back the tenant the afterTransactionStart subscriber set, and stores it. */
  @Post('tenant')
  async tenant() {
    const session = this.context.session();
    const sql =
      engine.name === 'postgres'
        ? "SELECT current_setting('app.tenant', true) AS tenant"
        : 'SELECT CAST(@tenant AS CHAR) AS tenant';
    const rows: Array<{ tenant: string | null }> = await session.query(sql);
    const tenant = String(rows[0]?.tenant);
    await session.insert(Example, { text: `tenant ${tenant}` });
    return tenant;
  }
}

/** The same work, done with plain TypeORM and through the library. */
const scenarios: Array<[string, (manager: EntityManager) => Promise<void>]> = [
  ['one insert that commits', (m) => m.insert(Example, { text: 'one' }).then(() => undefined)],
  [
    'one insert that fails and rolls back',
    async (m) => {
      await m.insert(Example, { text: 'one' });
      throw new Error('the work failed');
    },
  ],
  [
    'a nested manager.transaction() that succeeds',
    async (m) => {
      await m.insert(Example, { text: 'outer' });
      await m.transaction((inner) => inner.insert(Example, { text: 'inner' }));
    },
  ],
  [
    'a nested manager.transaction() that fails, caught, inside an outer transaction',
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

/** Every event but beforeTransactionStart counts the rows its connection sees. */
const countingInEveryEvent = Object.fromEntries(
  EVENTS.filter((name) => name !== 'beforeTransactionStart').map((name) => [
    name,
    recordCount(name),
  ]),
);

describe.each(engines)('TypeORM transaction events inside sessions ($name)', (current) => {
  let t: TestApp;
  let context: SessionContext;
  let factory: SessionFactory;

  /** Runs `work` with the probe recording; returns what it recorded. */
  async function recorded(
    work: () => Promise<unknown>,
    what: string,
  ): Promise<{ events: string[]; outcome: Awaited<ReturnType<typeof settle>> }> {
    probe.events = [];
    probe.active = true;
    try {
      const result = await settle(work(), what);
      return { events: [...probe.events], outcome: result };
    } finally {
      probe.active = false;
    }
  }

  /**
   * Last resort after a test left a session stuck (today's code deadlocks when a subscriber
   * queries): ends every other connection to the test database from a side connection so that
   * the pool's sockets close and Jest can go on; the stuck close is abandoned.
   */
  async function hardStop(): Promise<void> {
    const side = new DataSource({ ...current.options, logging: false });
    await side.initialize();
    const others =
      current.name === 'postgres'
        ? 'SELECT pid AS id FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()'
        : 'SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()';
    const kill = (id: number) =>
      current.name === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL ${id}`;
    try {
      await eventually(async () => {
        const rows: Array<{ id: number | string }> = await side.query(others);
        for (const { id } of rows) await side.query(kill(Number(id))).catch(() => undefined);
        return rows.length === 0;
      }, 2000).catch(() => undefined);
    } finally {
      await side.destroy();
    }
  }

  beforeEach(async () => {
    engine = current;
    Object.assign(probe, { active: false, events: [], actions: {} });
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(current), subscribers: [TransactionProbe] }),
        TypeOrmContextModule.forRoot(),
      ],
      controllers: [SubscribersController],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    t = wrap(app, current, app.get(DataSource));
    context = app.get(SessionContext);
    factory = app.get(SessionFactory);
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(async () => {
    probe.active = false;
    // Nothing checked out and nothing idle in transaction; then the app must close in time.
    const clean = await outcome(
      eventually(
        async () =>
          checkedOut(t.dataSource) === 0 && (await idleInTransaction(current, t.dataSource)) === 0,
        1000,
      ),
    );
    const shutDown = await outcome(within(t.close(), 'app.close()', 2000));
    if (!shutDown.ok) await hardStop();
    expectResolved(clean);
    expectResolved(shutDown);
  });

  /** POSTs to `path`; fails with `hung: ...` when there is no answer within 5 s. */
  function post(path: string) {
    return t
      .http()
      .post(path)
      .timeout(5000)
      .then(
        (response) => response,
        (error: Error) => {
          throw new Error(`hung: POST ${path} did not answer within 5000 ms (${error.message})`);
        },
      );
  }

  describe('a beforeTransactionCommit subscriber writes an outbox row', () => {
    it.each<[string, (event: TransactionEvent) => Promise<unknown>]>([
      [
        'through event.queryRunner.query()',
        (event) => event.queryRunner.query("INSERT INTO example (text) VALUES ('outbox')"),
      ],
      [
        'through event.manager.insert()',
        (event) => event.manager.insert(Example, { text: 'outbox' }),
      ],
    ])(
      '%s: a request that fails has neither row; one that succeeds answers 201 with both',
      async (_via, write) => {
        probe.actions.beforeTransactionCommit = write;
        probe.active = true;
        const failed = await post('/subscribers/fail');
        expect(failed.status).toBe(500);
        expect(await t.texts()).toEqual([]);
        const response = await post('/subscribers/insert');
        expect(response.status).toBe(201);
        expect(await t.texts()).toEqual(['outbox', 'row']);
      },
    );
  });

  it('an afterTransactionStart subscriber sets a transaction-local setting the handler then reads', async () => {
    probe.actions.afterTransactionStart = (event) =>
      event.queryRunner.query(
        current.name === 'postgres'
          ? "SELECT set_config('app.tenant', '42', true)"
          : 'SET @tenant = 42',
      );
    probe.active = true;
    const response = await post('/subscribers/tenant');
    expect(response.status).toBe(201);
    expect(response.text).toBe('42');
    expect(await t.texts()).toEqual(['tenant 42']);
  });

  describe.each(scenarios)('the events of %s', (_label, work) => {
    it('are exactly those plain TypeORM fires, with subscribers that query in every event', async () => {
      probe.actions = countingInEveryEvent;
      const plain = await recorded(
        () => t.dataSource.transaction((m) => work(m)),
        'dataSource.transaction()',
      );
      const plainRows = await t.texts();
      await t.dataSource.query('DELETE FROM example');
      const library = await recorded(
        () => factory.runInNewContext(() => work(context.session())),
        'runInNewContext()',
      );
      expect(library.events).toEqual(plain.events);
      expect(library.outcome.ok).toBe(plain.outcome.ok);
      expect(await t.texts()).toEqual(plainRows);
    });
  });

  describe.each([
    ['afterTransactionCommit', '/subscribers/insert', 201],
    ['beforeTransactionRollback', '/subscribers/fail', 500],
    ['afterTransactionRollback', '/subscribers/fail', 500],
  ] as const)('a subscriber that queries in %s', (name, path, status) => {
    it('settles, sees what it sees in plain TypeORM, and the request answers', async () => {
      probe.actions = { [name]: recordCount(name) };
      const plain = await recorded(
        () =>
          t.dataSource.transaction(async (m) => {
            await m.insert(Example, { text: 'row' });
            if (status === 500) throw new Error('the work failed');
          }),
        'dataSource.transaction()',
      );
      const plainRows = await t.texts();
      await t.dataSource.query('DELETE FROM example');
      const library = await recorded(() => post(path).then((res) => res.status), 'the request');
      expect(library.outcome).toMatchObject({ ok: true, value: status });
      expect(library.events).toEqual(plain.events);
      expect(await t.texts()).toEqual(plainRows);
    });
  });
});
