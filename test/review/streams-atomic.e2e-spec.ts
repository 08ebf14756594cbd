import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { mergeMap, Observable, of } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { closeApp } from '../correctness/support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, HANG_MS, listen, Reading, sleep, within } from './streams-support.js';

@Controller('atomic')
class AtomicStreamController {
  constructor(private readonly context: SessionContext) {}

  /**
   * Two values worked on concurrently (mergeMap): the first runs an `atomic()` block (REQUIRED,
   * the default) that writes, waits, writes again and fails; the second writes and is emitted
   * while that block is between its two writes.
   */
  @Sse('split')
  split(): Observable<MessageEvent> {
    return of(1, 2).pipe(
      mergeMap(async (i) => {
        if (i === 1) {
          await this.context.atomic(async (manager) => {
            await manager.insert(Example, { text: 'atomic_first' });
            await sleep(300);
            await manager.insert(Example, { text: 'atomic_second' });
            throw new Error('the atomic block fails');
          });
          return { data: 'never' };
        }
        await sleep(100);
        await this.context.session().insert(Example, { text: 'value_2' });
        return { data: 'value_2' };
      }),
    );
  }

  /** The same block, but the progress value is emitted by the block itself between its writes. */
  @Sse('progress')
  progress(): Observable<MessageEvent> {
    return new Observable<MessageEvent>((subscriber) => {
      this.context
        .atomic(async (manager) => {
          await manager.insert(Example, { text: 'atomic_first' });
          subscriber.next({ data: 'half way' });
          await sleep(100);
          await manager.insert(Example, { text: 'atomic_second' });
          throw new Error('the atomic block fails');
        })
        .catch((error: unknown) => subscriber.error(error));
    });
  }
}

describe.each(engines)(
  'review: atomic() blocks inside a streamed response ($name)',
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
      ({ t, port } = await listen(engine, { controllers: [AtomicStreamController] }));
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(async () => {
      for (const reading of readings.splice(0)) reading.close();
      await expectReleased(engine, t.dataSource);
    });
    afterAll(() => closeApp(t, engine));

    // Expected: `atomic()` runs its function atomically, so a block that fails leaves none of its
    // writes, whatever another value of the same stream commits meanwhile. The per-value commit of
    // value_2 must not commit half of a block that is still running (only what the value reported:
    // 'value_2'). Actual: 'atomic_first' is committed by value_2's commit and stays after the block
    // failed.
    it('a value emitted while a concurrent atomic() block is between two writes does not commit half of that block', async () => {
      const stream = read('/atomic/split');
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(stream.events).toContain('value_2');
      expect(await t.texts()).toEqual(['value_2']);
    });

    // Expected: a value emitted from inside an atomic() block cannot commit the block's first
    // write (the block is not over); when the block then fails, none of its writes remain.
    // Actual: 'atomic_first' is committed with the 'half way' value and survives the failure.
    it('a value emitted inside an atomic() block that then fails leaves none of its writes', async () => {
      const stream = read('/atomic/progress');
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(await t.texts()).toEqual([]);
    });
  },
);
