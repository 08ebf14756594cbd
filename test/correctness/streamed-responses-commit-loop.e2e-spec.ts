import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { Observable } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, HANG_MS, listen, Reading, within } from './streamed-responses-support.js';

@Controller('loop')
class BusyWriterController {
  constructor(private readonly context: SessionContext) {}

  /**
   * An import: a loop writes 150 rows one after the other, while a progress event is emitted
   * every 5 ms; 'done' once the loop finished. No beforeCommit hook is configured.
   */
  @Sse('import')
  import(): Observable<MessageEvent> {
    const writer = (async () => {
      for (let i = 0; i < 150; i++) {
        await this.context.session().insert(Example, { text: `row_${i}` });
      }
    })();
    return new Observable<MessageEvent>((subscriber) => {
      const timer = setInterval(() => subscriber.next({ data: 'progress' }), 5);
      writer.then(
        () => {
          clearInterval(timer);
          subscriber.next({ data: 'done' });
          subscriber.complete();
        },
        (error: unknown) => {
          clearInterval(timer);
          subscriber.error(error);
        },
      );
      return () => clearInterval(timer);
    });
  }
}

describe.each(enginesAndSqlite)(
  'streamed responses: per-value commits next to a busy writer ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let port: number;
    const readings: Reading[] = [];

    beforeAll(async () => {
      ({ t, port } = await listen(engine, { controllers: [BusyWriterController] }));
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(async () => {
      for (const reading of readings.splice(0)) reading.close();
      await expectReleased(engine, t.dataSource);
    });
    afterAll(() => closeApp(t, engine));

    // Expected: each progress value goes out once the writes made before it are committed; a
    // writer that keeps writing meanwhile only means its later rows go with a later value. The
    // stream ends with 'done' and all 150 rows committed. Before the fix: the commit before a value keeps
    // finding a new transaction begun by the writer, gives up after 5 passes with
    // TypeOrmContextError ("beforeCommit hooks kept beginning new transactions" although there is
    // no hook), the stream ends with an error event and the rows since the last value are lost.
    it('a value emitted while another part of the handler keeps writing is sent, and the stream completes', async () => {
      const stream = new Reading(port, '/loop/import');
      readings.push(stream);
      await within(HANG_MS, 'the SSE response', stream.end);
      expect(stream.body).not.toContain('event: error');
      expect(stream.events.at(-1)).toBe('done');
      expect(await t.rows()).toBe(150);
    });
  },
);
