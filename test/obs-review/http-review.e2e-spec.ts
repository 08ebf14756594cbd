import { type CanActivate, Controller, Get, Injectable, Post, UseGuards } from '@nestjs/common';
import { SessionContext } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { record } from './recorder.js';

/** A guard that loads something through the request's session, as an auth guard does. */
@Injectable()
class LoadsUserGuard implements CanActivate {
  constructor(private readonly context: SessionContext) {}
  async canActivate(): Promise<boolean> {
    await this.context.session().query('SELECT 1');
    return true;
  }
}

@Controller('obs')
class ObsController {
  constructor(private readonly context: SessionContext) {}

  @Get('guarded')
  @UseGuards(LoadsUserGuard)
  guarded(): string {
    return 'ok';
  }

  @Get('plain')
  plain(): string {
    return 'no database';
  }

  @Post('write')
  async write(): Promise<string> {
    await this.context.session().query("INSERT INTO example (text) VALUES ('w')");
    return 'written';
  }
}

/** Review of the `unit` channel for HTTP requests (docs/observability.md). */
describe.each(engines)('tracing channels, HTTP review ($name)', (engine: Engine) => {
  let t: TestApp;
  let recorder: ReturnType<typeof record> | undefined;

  beforeAll(async () => {
    t = await createTestApp(engine, { controllers: [ObsController], providers: [LoadsUserGuard] });
  });
  afterEach(() => {
    recorder?.stop();
    recorder = undefined;
  });
  afterAll(() => t.close());

  it('a request whose guard uses the session: the unit message names its handler by asyncEnd', async () => {
    recorder = record(['unit']);
    await t.http().get('/obs/guarded').expect(200);
    expect(recorder.names()).toEqual(['unit:start', 'unit:asyncStart', 'unit:asyncEnd']);
    const end = recorder.events.at(-1)!.message;
    // "handler: the handler that serves it (UsersController.create()), once the interceptor
    // claimed it": the interceptor claimed this unit, after the guard created its session.
    expect({ kind: end.kind, handler: end.handler, outcome: end.outcome }).toEqual({
      kind: 'http',
      handler: 'ObsController.guarded()',
      outcome: 'committed',
    });
  });

  it('a request that never touches the database publishes nothing', async () => {
    recorder = record();
    await t.http().get('/obs/plain').expect(200);
    expect(recorder.names()).toEqual([]);
  });

  it('a request that writes: unit and connection events, handler named', async () => {
    recorder = record();
    await t.http().post('/obs/write').expect(201);
    expect(recorder.names()).toEqual([
      'unit:start',
      'connection:start',
      'connection:end',
      'connection:asyncStart',
      'connection:asyncEnd',
      'unit:asyncStart',
      'unit:asyncEnd',
    ]);
    expect(recorder.events[0]!.message).toEqual({
      kind: 'http',
      handler: 'ObsController.write()',
      route: 'POST /obs/write',
    });
    await t.dataSource.query('DELETE FROM example');
  });
});
