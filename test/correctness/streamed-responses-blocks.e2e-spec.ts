import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { mergeMap, Observable, of } from 'rxjs';
import { Propagation, SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  expectReleased,
  HANG_MS,
  listen,
  Reading,
  sleep,
  within,
} from './streamed-responses-support.js';

@Controller('blocks')
class BlocksController {
  constructor(private readonly context: SessionContext) {}

  /**
   * Two values worked on concurrently (mergeMap): the first runs an `atomic()` block (REQUIRED)
   * that writes, waits, writes again and then fails or not; the second writes and is emitted
   * while that block is between its two writes.
   */
  @Sse('split')
  split(): Observable<MessageEvent> {
    const fails = this.fails;
    return of(1, 2).pipe(
      mergeMap(async (i) => {
        if (i === 1) {
          await this.context.atomic(async (manager) => {
            await manager.insert(Example, { text: 'atomic_first' });
            await sleep(300);
            await manager.insert(Example, { text: 'atomic_second' });
            if (fails) throw new Error('the atomic block fails');
          });
          return { data: 'block done' };
        }
        await sleep(100);
        await this.context.session().insert(Example, { text: 'value_2' });
        return { data: 'value_2' };
      }),
    );
  }

  /** Set per test: whether the block of `split` fails. */
  fails = true;

  /** A value emitted by an atomic() block between its writes; the block then fails. */
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

  /** A value emitted inside a REQUIRES_NEW block, after its write; the block ends 300 ms later. */
  @Sse('requires-new')
  requiresNew(): Observable<MessageEvent> {
    return this.inside(Propagation.REQUIRES_NEW, 'requires_new_write');
  }

  /** The same inside a NESTED block. */
  @Sse('nested')
  nested(): Observable<MessageEvent> {
    return this.inside(Propagation.NESTED, 'nested_write');
  }

  private inside(propagation: Propagation, text: string): Observable<MessageEvent> {
    return new Observable<MessageEvent>((subscriber) => {
      this.context
        .atomic(
          async (manager) => {
            await manager.insert(Example, { text });
            subscriber.next({ data: 'saved' });
            await sleep(300);
          },
          { propagation },
        )
        .then(
          () => subscriber.complete(),
          (error: unknown) => subscriber.error(error),
        );
    });
  }
}

describe.each(enginesAndSqlite)(
  'streamed responses: a value never splits a transaction block ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let port: number;
    let controller: BlocksController;
    const readings: Reading[] = [];
    const read = (path: string) => {
      const reading = new Reading(port, path);
      readings.push(reading);
      return reading;
    };

    beforeAll(async () => {
      ({ t, port } = await listen(engine, { controllers: [BlocksController] }));
      controller = t.app.get(BlocksController);
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(async () => {
      for (const reading of readings.splice(0)) reading.close();
      await expectReleased(engine, t.dataSource);
    });
    afterAll(() => closeApp(t, engine));

    // value_2 is emitted while a concurrent atomic() block (REQUIRED: it joins the request's
    // transaction, which value_2's write is in too) is between its writes. Before the fix, value_2's
    // commit committed 'atomic_first' and it stayed after the block failed. Now the value waits
    // for the block's end; the block failed, so the shared transaction is rollback-only: value_2
    // is never reported and nothing stays.
    it('a value emitted while a concurrent atomic() block that fails is open: none of its writes stay', async () => {
      controller.fails = true;
      const stream = read('/blocks/split');
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(stream.events).not.toContain('value_2');
      expect(await t.texts()).toEqual([]);
    });

    // The same block succeeding: value_2 waits for its end, and arrives with all three committed.
    it('a value emitted while a concurrent atomic() block is open arrives once the whole block committed', async () => {
      controller.fails = false;
      const stream = read('/blocks/split');
      await stream.waitFor('data: value_2', 'value_2');
      const texts = await t.texts();
      await within(HANG_MS, 'the SSE response', stream.end);
      expect([...texts].sort()).toEqual(['atomic_first', 'atomic_second', 'value_2']);
    });

    // Before the fix: 'atomic_first' was committed with the 'half way' value and survived.
    it('a value emitted inside an atomic() block that then fails leaves none of its writes', async () => {
      const stream = read('/blocks/progress');
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(stream.events).not.toContain('half way');
      expect(await t.texts()).toEqual([]);
    });

    // Before the fix: 'saved' arrived at once while the block's write was still uncommitted.
    it('REQUIRES_NEW: when the value arrives, the write the block made before it is committed', async () => {
      const stream = read('/blocks/requires-new');
      await stream.waitFor('data: saved', 'the value');
      const rowsWhenTheValueArrived = await t.rows();
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(rowsWhenTheValueArrived).toBe(1);
    });

    // Held before the fix too: inside a NESTED block the value waits for the block's end.
    it('NESTED: when the value arrives, the write the block made before it is committed', async () => {
      const stream = read('/blocks/nested');
      await stream.waitFor('data: saved', 'the value');
      const rowsWhenTheValueArrived = await t.rows();
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(rowsWhenTheValueArrived).toBe(1);
    });
  },
);
