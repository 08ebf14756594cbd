import { Controller, Get, Injectable } from '@nestjs/common';
import { tracingChannel } from 'node:diagnostics_channel';
import {
  ConnectionAcquireTimeoutError,
  Propagation,
  SessionContext,
  SessionFactory,
  CONNECTION_CHANNEL,
  SAVEPOINT_CHANNEL,
  TRANSACTION_CHANNEL,
  Transactional,
  UNIT_CHANNEL,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { record, type Recorder } from './recorder.js';

@Injectable()
class UsersService {
  constructor(private readonly context: SessionContext) {}

  @Transactional()
  async register(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async audit(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ propagation: Propagation.NESTED })
  async risky(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
    throw new Error('the nested block fails');
  }
}

@Controller()
class UsersController {
  constructor(
    private readonly users: UsersService,
    private readonly factory: SessionFactory,
  ) {}

  @Get('commit')
  async commit(): Promise<string> {
    await this.users.register('a');
    return 'ok';
  }

  @Get('fail')
  async fail(): Promise<string> {
    await this.users.register('a');
    throw new Error('the handler fails');
  }

  @Get('requires-new')
  async requiresNew(): Promise<string> {
    await this.users.register('outer');
    await this.users.audit('inner');
    return 'ok';
  }

  @Get('nested')
  async nested(): Promise<string> {
    await this.users.register('outer');
    await this.users.risky('inner').catch(() => undefined);
    return 'ok';
  }

  @Get('wait')
  async wait(): Promise<string> {
    await this.users.register('held');
    // The pool's one connection is this request's: the new context waits for it, and gives up.
    await this.factory.runInNewContext(() => this.users.register('waits'));
    return 'unreachable';
  }
}

const conn = (event: string, more: Record<string, unknown> = {}) => ({
  channel: 'connection',
  event,
  dataSource: 'default',
  acquireTimeout: expect.any(Number),
  ...more,
});
const joined = (event: string, more: Record<string, unknown> = {}) => ({
  channel: 'transaction',
  event,
  dataSource: 'default',
  propagation: 'REQUIRED',
  mode: 'join',
  label: 'UsersService.register()',
  attempt: 1,
  ...more,
});
const unit = (event: string, more: Record<string, unknown> = {}) => ({
  channel: 'unit',
  event,
  kind: 'http',
  ...more,
});
const taken = [
  conn('start'),
  conn('asyncEnd', { waited: true, timedOut: false, onReplica: false, replica: false }),
];

describe.each(engines)('Tracing channels ($name)', (engine) => {
  let t: TestApp;
  let recorder: Recorder | undefined;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [UsersController],
      providers: [UsersService],
    });
  });
  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    await t.dataSource.query('DELETE FROM example');
    await t.expectClean();
  });
  afterAll(() => t.close());

  it('an HTTP request that commits: its unit, the block it joins, the connection', async () => {
    recorder = record();
    await t.http().get('/commit').expect(200);
    const handler = 'UsersController.commit()';
    const route = 'GET /commit';
    expect(recorder.events).toEqual([
      unit('start', { handler, route }),
      joined('start'),
      ...taken,
      joined('asyncEnd', { outcome: 'joined' }),
      unit('asyncEnd', { handler, route, outcome: 'committed' }),
    ]);
    expect(await t.texts()).toEqual(['a']);
  });

  it('every message of a data source names its database: system, name, host and port', async () => {
    const seen: Array<[string, unknown]> = [];
    const names = [TRANSACTION_CHANNEL, CONNECTION_CHANNEL, SAVEPOINT_CHANNEL];
    const subscribers = names.map((name) => {
      const handlers = {
        start: (message: { db?: unknown }) => void seen.push([name, message.db]),
        end: () => undefined,
        asyncStart: () => undefined,
        asyncEnd: () => undefined,
        error: () => undefined,
      };
      tracingChannel(name).subscribe(handlers as never);
      return () => tracingChannel(name).unsubscribe(handlers as never);
    });
    try {
      await t.http().get('/nested').expect(200);
    } finally {
      subscribers.forEach((stop) => stop());
    }
    const url = new URL(engine.options.url);
    const expected = {
      system: engine.name === 'postgres' ? 'postgresql' : 'mariadb',
      namespace: url.pathname.slice(1),
      address: url.hostname,
      port: Number(url.port),
    };
    expect(new Set(seen.map(([name]) => name))).toEqual(new Set(names));
    for (const [, db] of seen) expect(db).toEqual(expected);
  });

  it('an HTTP request that throws: its unit rolls back', async () => {
    recorder = record();
    await t.http().get('/fail').expect(500);
    const handler = 'UsersController.fail()';
    const route = 'GET /fail';
    expect(recorder.events).toEqual([
      unit('start', { handler, route }),
      joined('start'),
      ...taken,
      joined('asyncEnd', { outcome: 'joined' }),
      unit('asyncEnd', { handler, route, outcome: 'rolled back' }),
    ]);
    expect(await t.rows()).toBe(0);
  });

  it('a REQUIRES_NEW block inside a request: a transaction of its own, on a connection of its own', async () => {
    recorder = record();
    await t.http().get('/requires-new').expect(200);
    const handler = 'UsersController.requiresNew()';
    const route = 'GET /requires-new';
    const own = (event: string, more: Record<string, unknown> = {}) => ({
      channel: 'transaction',
      event,
      dataSource: 'default',
      propagation: 'REQUIRES_NEW',
      mode: 'begin',
      label: 'UsersService.audit()',
      attempt: 1,
      ...more,
    });
    expect(recorder.events).toEqual([
      unit('start', { handler, route }),
      joined('start'),
      ...taken,
      joined('asyncEnd', { outcome: 'joined' }),
      own('start'),
      ...taken,
      own('asyncEnd', { outcome: 'committed' }),
      unit('asyncEnd', { handler, route, outcome: 'committed' }),
    ]);
    expect(await t.texts()).toEqual(['inner', 'outer']);
  });

  it('a NESTED block that fails: its savepoint rolls back, the unit commits', async () => {
    recorder = record();
    await t.http().get('/nested').expect(200);
    const handler = 'UsersController.nested()';
    const route = 'GET /nested';
    const nested = (event: string, more: Record<string, unknown> = {}) => ({
      channel: 'transaction',
      event,
      dataSource: 'default',
      propagation: 'NESTED',
      mode: 'savepoint',
      label: 'UsersService.risky()',
      attempt: 1,
      ...more,
    });
    const savepoint = (event: string, more: Record<string, unknown> = {}) => ({
      channel: 'savepoint',
      event,
      dataSource: 'default',
      ...more,
    });
    expect(recorder.events).toEqual([
      unit('start', { handler, route }),
      joined('start'),
      ...taken,
      joined('asyncEnd', { outcome: 'joined' }),
      nested('start'),
      savepoint('start'),
      savepoint('error', { savepoint: 'typeorm_1', outcome: 'rolled back', error: 'Error' }),
      savepoint('asyncEnd', { savepoint: 'typeorm_1', outcome: 'rolled back', error: 'Error' }),
      nested('error', { outcome: 'rolled back to savepoint', reason: 'error', error: 'Error' }),
      nested('asyncEnd', { outcome: 'rolled back to savepoint', reason: 'error', error: 'Error' }),
      unit('asyncEnd', { handler, route, outcome: 'committed' }),
    ]);
    expect(await t.texts()).toEqual(['outer']);
  });

  it('a retried block: one transaction event per attempt, the first rolled back', async () => {
    const context = t.app.get(SessionContext);
    let attempts = 0;
    recorder = record();
    await context.atomic(
      async (manager) => {
        await manager.insert(Example, { text: `attempt ${++attempts}` });
        if (attempts === 1)
          throw Object.assign(new Error('serialization failure'), { code: '40001' });
      },
      { retry: 1 },
    );
    const begun = (event: string, attempt: number, more: Record<string, unknown> = {}) => ({
      channel: 'transaction',
      event,
      dataSource: 'default',
      propagation: 'REQUIRED',
      mode: 'begin',
      label: 'sessionContext.atomic()',
      attempt,
      ...more,
    });
    const failed = { outcome: 'rolled back', reason: 'error', error: 'Error' };
    expect(recorder.events).toEqual([
      begun('start', 1),
      ...taken,
      begun('error', 1, failed),
      begun('asyncEnd', 1, failed),
      begun('start', 2),
      ...taken,
      begun('asyncEnd', 2, { outcome: 'committed' }),
    ]);
    expect(await t.texts()).toEqual(['attempt 2']);
  });

  it('the testing kit: a runInNewContext() unit in a TestTransaction publishes the same events', async () => {
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    const tx = await TestTransaction.start(t.app);
    try {
      recorder = record();
      await factory.runInNewContext(() =>
        context.atomic((manager) => manager.insert(Example, { text: 'kit' })),
      );
      const events = recorder.events;
      recorder.stop();
      const plain = (event: string, more: Record<string, unknown> = {}) => ({
        ...joined(event, more),
        label: 'sessionContext.atomic()',
      });
      expect(events).toEqual([
        { channel: 'unit', event: 'start', kind: 'context' },
        plain('start'),
        ...taken,
        plain('asyncEnd', { outcome: 'joined' }),
        { channel: 'unit', event: 'asyncEnd', kind: 'context', outcome: 'committed' },
      ]);
    } finally {
      await tx.rollback();
    }
    expect(await t.rows()).toBe(0);
  });

  it('with no subscriber: nothing is published, and the request behaves the same', async () => {
    expect(tracingChannel(UNIT_CHANNEL).hasSubscribers).toBe(false);
    expect(tracingChannel(TRANSACTION_CHANNEL).hasSubscribers).toBe(false);
    await t.http().get('/commit').expect(200);
    await t.http().get('/fail').expect(500);
    expect(await t.texts()).toEqual(['a']);
  });
});

describe.each(engines)('Tracing channels: a pool wait that times out ($name)', (engine) => {
  let t: TestApp;
  let recorder: Recorder | undefined;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [UsersController],
      providers: [UsersService],
      poolSize: 1,
      context: { acquireTimeout: 200 },
    });
  });
  afterEach(() => recorder?.stop());
  afterAll(() => t.close());

  it('the connection event says how long it waited and that it timed out', async () => {
    recorder = record();
    await t.http().get('/wait').expect(500);
    const waits = recorder.events.filter((event) => event.channel === 'connection');
    expect(waits).toEqual([
      conn('start', { acquireTimeout: 200 }),
      conn('asyncEnd', {
        acquireTimeout: 200,
        waited: true,
        timedOut: false,
        onReplica: false,
        replica: false,
      }),
      conn('start', { acquireTimeout: 200 }),
      conn('error', {
        acquireTimeout: 200,
        waited: true,
        timedOut: true,
        replica: false,
        error: ConnectionAcquireTimeoutError.name,
      }),
      conn('asyncEnd', {
        acquireTimeout: 200,
        waited: true,
        timedOut: true,
        replica: false,
        error: ConnectionAcquireTimeoutError.name,
      }),
    ]);
    const units = recorder.events.filter((event) => event.channel === 'unit');
    expect(units.map((event) => [event.kind, event.event, event.outcome])).toEqual([
      ['http', 'start', undefined],
      ['context', 'start', undefined],
      ['context', 'asyncEnd', 'rolled back'],
      ['http', 'asyncEnd', 'rolled back'],
    ]);
    expect(await t.rows()).toBe(0);
    await t.expectClean();
  });
});
