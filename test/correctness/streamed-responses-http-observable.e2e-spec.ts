import { BadRequestException, Controller, Get } from '@nestjs/common';
import { concat, defer, interval, mergeMap, type Observable, take } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, listen, sleep } from './streamed-responses-support.js';

@Controller('plain')
class PlainObservableController {
  constructor(private readonly context: SessionContext) {}

  /** A plain GET (not @Sse): a value after a write, then an error. */
  @Get('value-then-error')
  valueThenError(): Observable<number> {
    return concat(
      defer(async () => {
        await this.context.session().insert(Example, { text: 'before_the_error' });
        return 1;
      }),
      defer(async () => {
        await sleep(20);
        throw new BadRequestException('refused');
      }),
    );
  }

  /** A plain GET: three values 10 ms apart, each after a write; the third fails. */
  @Get('interval')
  intervalValues(): Observable<number> {
    return interval(10).pipe(
      take(3),
      mergeMap(async (i) => {
        await this.context.session().insert(Example, { text: `value_${i}` });
        if (i === 2) throw new BadRequestException('the third fails');
        return i;
      }),
    );
  }
}

describe.each(enginesAndSqlite)(
  'streamed responses: a plain HTTP handler returning an Observable ($name)',
  (engine: Engine) => {
    let t: TestApp;

    beforeAll(async () => {
      ({ t } = await listen(engine, { controllers: [PlainObservableController] }));
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => expectReleased(engine, t.dataSource));
    afterAll(() => closeApp(t, engine));

    // Expected: over plain HTTP Nest sends one response (the last value, or the error); the
    // intermediate values are sent to no one, so the handler is one unit: "handler throws ->
    // ROLLBACK" (docs/auto-commit.md). The client gets 400 and nothing is committed.
    // Before the fix: the write before the first value was committed on that value (as if it were an SSE
    // event), then the handler failed: a 400 response with its write kept.
    it('a value then an error: the error response, and the write before the value is rolled back', async () => {
      const response = await t.http().get('/plain/value-then-error');
      expect(response.status).toBe(400);
      expect(await t.texts()).toEqual([]);
    });

    // Expected: 400, nothing committed. Before the fix: 'value_0' and 'value_1' (and on some runs
    // 'value_2') stay committed behind a 400 response.
    it('interval(10).pipe(take(3)) whose third value fails: the error response, nothing committed', async () => {
      const response = await t.http().get('/plain/interval');
      expect(response.status).toBe(400);
      expect(await t.texts()).toEqual([]);
    });
  },
);
