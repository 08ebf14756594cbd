import { SessionContext, SessionFactory } from '../../src/index.js';
import type { TestApp } from '../support/create-app.js';
import { createReplicaApp, pair, portOf, type ReplicaApp } from '../replicas/replica-app.js';
import { type Where, where } from '../replicas/replica-item.js';
import { within } from './support-a.js';
import { secondPostgres, startApp } from './two-apps-support.js';

/**
 * Found in the review of "no process-wide mutable state" (98b7a94): units of work belong to one app, and app
 * A's code inside a context of app B still runs in A's context (found up the frame's outer chain).
 * But when A's context session takes its connection there, the primary is noted on the unit of
 * the CURRENT frame (B's, `transaction-wire.ts` take()), not on the unit the session belongs to.
 * A's unit never learns it used its primary, so A's next read-only transaction goes to a replica:
 * the read-your-writes rule of docs/scaling.md ("inside a unit of work that already used the
 * primary of that data source: the primary") is broken, and B's unit is marked instead.
 */
describe("two apps: read-your-writes of app A's unit when A's session starts inside app B's context", () => {
  let a: ReplicaApp;
  let b: TestApp;
  const onPrimary: Where = { replica: false, port: portOf(pair().primary) };

  beforeAll(async () => {
    a = await createReplicaApp();
    b = await startApp(await secondPostgres());
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('control: a read-only block after the unit used the primary stays on the primary', async () => {
    const context = a.app.get(SessionContext);
    const factory = a.app.get(SessionFactory);
    const read = factory.runInNewContext(async () => {
      await context.session().query('SELECT 1');
      return factory.atomic(where, { readOnly: true });
    });
    expect(await within(read, "A's context")).toEqual(onPrimary);
  });

  it("A's unit used its primary from inside B's context: A's next read-only block stays on the primary", async () => {
    const context = a.app.get(SessionContext);
    const factory = a.app.get(SessionFactory);
    const read = factory.runInNewContext(async () => {
      await b.app.get(SessionFactory).runInNewContext(async () => {
        // A's code, in A's context (through the outer chain): A's unit's session on the primary.
        await context.session().query('SELECT 1');
      });
      return factory.atomic(where, { readOnly: true });
    });
    // Expected: the primary, as in the control. Before the fix: the replica.
    expect(await within(read, "A's context")).toEqual(onPrimary);
  });
});
