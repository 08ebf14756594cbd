import { Controller, Get, Param } from '@nestjs/common';
import { tracingChannel } from 'node:diagnostics_channel';
import {
  CALLBACK_CHANNEL,
  type CallbackMessage,
  SessionContext,
  UNIT_CHANNEL,
  type UnitMessage,
} from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

@Controller('notes')
class NotesController {
  constructor(private readonly context: SessionContext) {}

  @Get(':id')
  async write(@Param('id') id: string): Promise<string> {
    await this.context.session().insert(Example, { text: `note ${id}` });
    this.context.afterCommit(() => {
      throw new Error('the afterCommit callback fails');
    });
    this.context.afterCompletion(() => undefined);
    return 'ok';
  }
}

/** What a subscriber saw of a tracing channel: `event name` per message, in order. */
function watch<M extends object>(name: string, describe: (message: M) => string) {
  const seen: string[] = [];
  const on = (event: string) => (message: M) => void seen.push(`${event} ${describe(message)}`);
  const handlers = {
    start: on('start'),
    end: () => undefined,
    asyncStart: () => undefined,
    asyncEnd: on('asyncEnd'),
    error: on('error'),
  };
  tracingChannel(name).subscribe(handlers as never);
  return { seen, stop: () => tracingChannel(name).unsubscribe(handlers as never) };
}

describe.each(engines)('Tracing channels: hooks, callbacks and routes ($name)', (engine) => {
  let t: TestApp;
  const hooks: string[] = [];

  beforeAll(async () => {
    t = await createTestApp(engine, {
      controllers: [NotesController],
      context: {
        onSessionStart: () => void hooks.push('onSessionStart'),
        beforeCommit: async (session) => {
          await session.query('SELECT 1');
          hooks.push('beforeCommit');
        },
      },
    });
  });
  afterEach(() => t.dataSource.query('DELETE FROM example'));
  afterAll(() => t.close());

  it('the module hooks and the callbacks each publish a start and an end, a failing one its error', async () => {
    const callbacks = watch<CallbackMessage>(CALLBACK_CHANNEL, (message) =>
      [message.name, message.dataSource ?? '-', message.error ? 'failed' : 'ok'].join(' '),
    );
    try {
      await t.http().get('/notes/7').expect(200);
      await eventually(() => callbacks.seen.length === 9);
    } finally {
      callbacks.stop();
    }
    expect(callbacks.seen).toEqual([
      'start onSessionStart default ok',
      'asyncEnd onSessionStart default ok',
      'start beforeCommit default ok',
      'asyncEnd beforeCommit default ok',
      'start afterCommit - ok',
      'error afterCommit - failed',
      'asyncEnd afterCommit - failed',
      'start afterCompletion - ok',
      'asyncEnd afterCompletion - ok',
    ]);
    expect(hooks).toEqual(['onSessionStart', 'beforeCommit']);
    expect(await t.texts()).toEqual(['note 7']);
  });

  it("the unit's message names the route's template, not the URL", async () => {
    const units = watch<UnitMessage>(UNIT_CHANNEL, (message) =>
      [message.kind, message.handler, message.route, message.outcome ?? '-'].join(' | '),
    );
    try {
      await t.http().get('/notes/42').expect(200);
    } finally {
      units.stop();
    }
    expect(units.seen).toEqual([
      'start http | NotesController.write() | GET /notes/:id | -',
      'asyncEnd http | NotesController.write() | GET /notes/:id | committed',
    ]);
  });
});
