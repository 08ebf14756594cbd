import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { delay, Observable, of } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import {
  expectReleased,
  HANG_MS,
  listen,
  Reading,
  sleep,
  within,
} from './streamed-responses-support.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** The concurrent block of the running test's request. */
const gate: { late?: Promise<unknown> } = {};

@Controller('last-value')
class ReviewBlocksController {
  constructor(private readonly context: SessionContext) {}

  /**
   * A block joining the request's transaction runs concurrently (not awaited by the source): it
   * writes, waits 300 ms, writes again. The source emits its one value 50 ms in, and completes in
   * the same tick, while the block is open.
   */
  @Sse('complete-while-open')
  completeWhileOpen(): Observable<MessageEvent> {
    gate.late = this.context.atomic(async (manager) => {
      await manager.insert(Example, { text: 'block_first' });
      await sleep(300);
      await manager.insert(Example, { text: 'block_second' });
    });
    gate.late.catch(() => undefined);
    return of({ data: 'done' }).pipe(delay(50));
  }

  /** The same with two values: the last one and the completion in one tick. */
  @Sse('complete-while-open-2')
  completeWhileOpen2(): Observable<MessageEvent> {
    return new Observable<MessageEvent>((subscriber) => {
      subscriber.next({ data: 'first' });
      gate.late = this.context.atomic(async (manager) => {
        await manager.insert(Example, { text: 'block_first' });
        await sleep(300);
        await manager.insert(Example, { text: 'block_second' });
      });
      gate.late.catch(() => undefined);
      setTimeout(() => {
        subscriber.next({ data: 'done' });
        subscriber.complete();
      }, 50);
    });
  }
}

/*
 * docs/auto-commit.md, "Streamed values": "A value never splits a transaction block: while a block
 * of the unit is open (atomic() or @Transactional() joining the request's transaction, ... wherever
 * the value comes from: inside the block or from concurrent work), the value waits until no block
 * is open, then the unit commits and the value is sent."
 * Found: when the last value and the source's completion come in one tick, the interceptor ends
 * the unit at once (auto-commit.interceptor.ts: `if (tail?.first) end()`), without waiting for
 * the open block: the unit commits the block's first write, the value is sent, and the block's
 * second write then fails (context ended): the block is split, half of it committed.
 */
describe.each(enginesAndSqlite)(
  'streamed values: the last value and open blocks ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let port: number;
    const readings: Reading[] = [];
    const read = (path: string) => {
      const reading = new Reading(port, path);
      readings.push(reading);
      return reading;
    };

    beforeAll(async () => {
      ({ t, port } = await listen(engine, { controllers: [ReviewBlocksController] }));
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(async () => {
      for (const reading of readings.splice(0)) reading.close();
      await expectReleased(engine, t.dataSource);
    });
    afterAll(() => closeApp(t, engine));

    // "A value never splits a transaction block: while a block of the unit is open (atomic() ...
    // joining the request's transaction ...) the value waits until no block is open, then the unit
    // commits and the value is sent."
    for (const path of ['complete-while-open', 'complete-while-open-2']) {
      it(`${path}: the last value, completing in its tick while a block is open, does not split the block`, async () => {
        const stream = read(`/last-value/${path}`);
        const how = await within(HANG_MS, 'the SSE response', stream.end);
        await within(
          HANG_MS,
          'the block',
          gate.late!.catch(() => undefined),
        );
        await sleep(100);
        const rows = await t.texts();
        expect({ how, rows }).toEqual({ how: 'ended', rows: ['block_first', 'block_second'] });
      });
    }
  },
);
