import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { Observable } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { closeApp } from '../correctness/support-b.js';
import type { TestApp } from '../support/create-app.js';
import { checkedOut, type Engine, engines, idleInTransaction } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, listen, Reading, sleep } from './streams-support.js';

@Controller('inflight')
class InFlightController {
  constructor(private readonly context: SessionContext) {}

  /** A write started and not awaited, then a value; the stream then stays open. */
  @Sse('fire-and-forget')
  fireAndForget(): Observable<MessageEvent> {
    return new Observable<MessageEvent>((subscriber) => {
      setTimeout(() => {
        void this.context.session().insert(Example, { text: 'started_before_the_value' });
        subscriber.next({ data: 'one' });
      }, 10);
    });
  }
}

describe.each(engines)(
  'review: a write in flight when a value is emitted ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let port: number;
    const readings: Reading[] = [];

    beforeAll(async () => {
      ({ t, port } = await listen(engine, { controllers: [InFlightController] }));
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(async () => {
      for (const reading of readings.splice(0)) reading.close();
      await expectReleased(engine, t.dataSource);
    });
    afterAll(() => closeApp(t, engine));

    // Expected (docs/auto-commit.md, streamed values): a value is sent once the writes made before
    // it are committed, and between values the unit holds no transaction and no connection. The
    // insert was issued before the value: it is committed by the time the value arrives, or at the
    // latest while the stream waits, and nothing stays idle in transaction.
    // Actual: the value goes out at once (TypeORM's insert has not reached the session yet when the
    // interceptor looks, so the unit looks settled); the insert then opens a transaction that stays
    // idle, holding its connection, for as long as the stream is open (and is rolled back when the
    // client leaves, although a value was sent after it).
    it('a write started (not awaited) before a value is committed, and no transaction is held while the stream waits', async () => {
      const stream = new Reading(port, '/inflight/fire-and-forget');
      readings.push(stream);
      await stream.waitFor('data: one', 'the first value');
      await sleep(300); // the stream stays open: nothing more is emitted
      const idle = await idleInTransaction(engine, t.dataSource);
      const held = checkedOut(t.dataSource);
      const rows = await t.rows();
      expect({ rows, idle, held }).toEqual({ rows: 1, idle: 0, held: 0 });
    });
  },
);
