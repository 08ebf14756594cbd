import { Controller, type MessageEvent, Sse } from '@nestjs/common';
import { Observable } from 'rxjs';
import { SessionContext } from '../../src/index.js';
import { closeApp } from './support-b.js';
import type { TestApp } from '../support/create-app.js';
import { type Engine, enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { expectReleased, listen, Reading, sleep } from './streamed-responses-support.js';

const probe: { slowHook: boolean; hookStarted?: () => void } = { slowHook: false };

@Controller('leave')
class LeaveController {
  constructor(private readonly context: SessionContext) {}

  /** Writes, then emits a value whose commit runs a slow beforeCommit hook; stays open. */
  @Sse('during-commit')
  duringCommit(): Observable<MessageEvent> {
    return new Observable<MessageEvent>((subscriber) => {
      void this.context
        .session()
        .insert(Example, { text: 'never_reported' })
        .then(() => {
          probe.slowHook = true;
          subscriber.next({ data: 'reported' });
        });
    });
  }
}

describe.each(enginesAndSqlite)(
  'streamed responses: a client that leaves while a value is being committed ($name)',
  (engine: Engine) => {
    let t: TestApp;
    let port: number;

    beforeAll(async () => {
      ({ t, port } = await listen(engine, {
        controllers: [LeaveController],
        context: {
          // Runs before the COMMIT statement: while it sleeps, the commit has not been sent yet.
          beforeCommit: async (manager) => {
            if (!probe.slowHook) return;
            probe.slowHook = false;
            probe.hookStarted?.();
            await manager.query(engine.sleepSql(0.4));
          },
        },
      }));
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => expectReleased(engine, t.dataSource));
    afterAll(() => closeApp(t, engine));

    // Expected (docs/auto-commit.md): "A client that disconnects ... rolls back only what was
    // written since the last value: work no client was told of." The client leaves while the
    // value's beforeCommit hook still runs, before any COMMIT was sent: the value never reached
    // anyone, so its write is rolled back. Before the fix: the commit goes on after the client left and
    // 'never_reported' stays committed.
    it("a client that leaves before the COMMIT of a value was sent: that value's write is rolled back", async () => {
      const hookStarted = new Promise<void>((resolve) => (probe.hookStarted = resolve));
      const stream = new Reading(port, '/leave/during-commit');
      await hookStarted;
      stream.close();
      await sleep(100);
      await expectReleased(engine, t.dataSource);
      expect(stream.events).toEqual([]);
      expect(await t.texts()).toEqual([]);
    });
  },
);
