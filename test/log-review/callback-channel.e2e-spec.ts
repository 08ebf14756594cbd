import { tracingChannel } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Injectable, Query } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import {
  CALLBACK_CHANNEL,
  type CallbackMessage,
  Propagation,
  SessionContext,
  Transactional,
} from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Every event of the callback channel: `start name`, `error name`, `asyncEnd name`, `end name`. */
function recordCallbacks(): { events: string[]; stop(): void } {
  const events: string[] = [];
  const on = (event: string) => (message: CallbackMessage) => {
    events.push(`${event} ${message.name}`);
  };
  const handlers = {
    start: on('start'),
    end: on('end'),
    asyncStart: () => undefined,
    asyncEnd: on('asyncEnd'),
    error: on('error'),
  };
  const channel = tracingChannel<unknown, CallbackMessage>(CALLBACK_CHANNEL);
  channel.subscribe(handlers);
  return { events, stop: () => channel.unsubscribe(handlers) };
}

const ran: string[] = [];

@Injectable()
class Blocks {
  constructor(private readonly context: SessionContext) {}

  @Transactional({ propagation: Propagation.NESTED })
  async nested(fail: boolean): Promise<void> {
    await this.context.session().insert(Example, { text: 'nested' });
    this.context.afterCommit(() => void ran.push('nested afterCommit'));
    this.context.afterRollback(() => void ran.push('nested afterRollback'));
    if (fail) throw new Error('the nested block fails');
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async own(): Promise<void> {
    await this.context.session().insert(Example, { text: 'own' });
    this.context.afterCommit(() => Promise.reject(new Error('own afterCommit rejects')));
  }
}

@Controller()
class CallbacksController {
  constructor(
    private readonly context: SessionContext,
    private readonly blocks: Blocks,
  ) {}

  @Get('savepoints')
  async savepoints(): Promise<string> {
    await this.context.session().insert(Example, { text: 'unit' });
    await this.blocks.nested(false);
    await this.blocks.nested(true).catch(() => undefined);
    return 'ok';
  }

  @Get('own')
  async own(): Promise<string> {
    await this.blocks.own();
    return 'ok';
  }

  @Get('write')
  async write(@Query('text') text: string): Promise<string> {
    await this.context.session().insert(Example, { text });
    return 'ok';
  }
}

/**
 * Review attacks on the `callback` channel (docs/observability.md): `start` before a hook or
 * callback runs, `error` when it failed, `asyncEnd` once it settled; exactly once each.
 */
describe.each(engines)('callback channel, review ($name)', (engine) => {
  let app: TestApp | undefined;
  let recorder: ReturnType<typeof recordCallbacks> | undefined;

  afterEach(async () => {
    recorder?.stop();
    recorder = undefined;
    await app?.close();
    app = undefined;
    ran.length = 0;
  });

  it('an onSessionStart hook that throws synchronously: start, error, end, asyncEnd once', async () => {
    app = await createTestApp(engine, {
      controllers: [CallbacksController],
      providers: [Blocks],
      context: {
        onSessionStart: (_manager: EntityManager) => {
          throw new Error('the hook throws synchronously');
        },
      },
    });
    recorder = recordCallbacks();
    await app.http().get('/write?text=hooked').expect(500);
    await eventually(() => recorder!.events.includes('asyncEnd onSessionStart'));
    expect(recorder.events).toEqual([
      'start onSessionStart',
      'end onSessionStart',
      'error onSessionStart',
      'asyncEnd onSessionStart',
    ]);
    expect(await app.rows()).toBe(0);
    await app.expectClean();
  });

  it('a beforeCommit hook that returns a rejected promise fails the commit, traced once', async () => {
    app = await createTestApp(engine, {
      controllers: [CallbacksController],
      providers: [Blocks],
      context: { beforeCommit: () => Promise.reject(new Error('beforeCommit rejects')) },
    });
    recorder = recordCallbacks();
    await app.http().get('/write?text=refused').expect(500);
    await eventually(() => recorder!.events.includes('asyncEnd beforeCommit'));
    expect(recorder.events).toEqual([
      'start beforeCommit',
      'end beforeCommit',
      'error beforeCommit',
      'asyncEnd beforeCommit',
    ]);
    expect(await app.rows()).toBe(0);
  });

  it("a released savepoint's callbacks are published once; a rolled-back one's afterRollback once", async () => {
    app = await createTestApp(engine, { controllers: [CallbacksController], providers: [Blocks] });
    recorder = recordCallbacks();
    await app.http().get('/savepoints').expect(200);
    await eventually(() => ran.length === 2);
    expect(await app.texts()).toEqual(['nested', 'unit']);
    // The released savepoint's afterCommit, the rolled-back one's afterRollback; in order.
    expect(ran).toEqual(['nested afterCommit', 'nested afterRollback']);
    expect(recorder.events).toEqual([
      'start afterCommit',
      'end afterCommit',
      'asyncEnd afterCommit',
      'start afterRollback',
      'end afterRollback',
      'asyncEnd afterRollback',
    ]);
  });

  it("a REQUIRES_NEW block's afterCommit that rejects: published once with its error; the commit stands", async () => {
    app = await createTestApp(engine, { controllers: [CallbacksController], providers: [Blocks] });
    recorder = recordCallbacks();
    await app.http().get('/own').expect(200);
    expect(await app.texts()).toEqual(['own']);
    expect(recorder.events).toEqual([
      'start afterCommit',
      'end afterCommit',
      'error afterCommit',
      'asyncEnd afterCommit',
    ]);
  });
});
