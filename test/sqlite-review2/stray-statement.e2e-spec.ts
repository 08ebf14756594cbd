import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntitySubscriberInterface, EventSubscriber } from 'typeorm';
import type { BeforeQueryEvent } from 'typeorm/subscriber/event/QueryEvent.js';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const STRAY = "INSERT INTO example (text) VALUES ('stray')";

/** Holds the stray statement in its BeforeQuery event (an async tracer, a slow logger) until opened. */
const gate = { held: false, open: () => undefined as void, opened: Promise.resolve() };

@EventSubscriber()
class SlowTracer implements EntitySubscriberInterface {
  beforeQuery(event: BeforeQueryEvent): Promise<void> | void {
    if (gate.held && event.query === STRAY) return gate.opened;
  }
}

/**
 * Attack: a statement a plain runner sent before its release, still on its way (held in its
 * BeforeQuery event) when the runner gives its turn back. It must not run in the transaction of
 * whoever holds the one connection next (the shared statement cache skips `connect()`; sql.js
 * sends on the driver's connection directly).
 */
describe.each(sqliteEngines)('SQLite review 2: a stray plain statement ($name)', (engine) => {
  let t: TestApp;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(engine), subscribers: [SlowTracer] }),
        TypeOrmContextModule.forRoot({ acquireTimeout: 600 }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    t = wrap(app, engine, app.get(DataSource));
    // Prepared and cached once (the cache every runner shares).
    await t.dataSource.query(STRAY);
    await t.dataSource.query('DELETE FROM example');
  });

  afterEach(() => {
    gate.held = false;
    return t.close();
  });

  it("does not run inside the next holder's transaction (and is not rolled back with it): release() waits for it", async () => {
    let open!: () => void;
    gate.opened = new Promise<void>((resolve) => (open = resolve));
    gate.held = true;
    const runner = t.dataSource.createQueryRunner();
    await runner.connect();
    const stray = runner.query(STRAY).then(
      () => 'reported written',
      () => 'failed',
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The turn is given back once the statement on its way settled, not before.
    let released = false;
    const releasing = runner.release().then(() => (released = true));
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    const unit = factory
      .runInNewContext(async () => {
        await context.session().insert(Example, { text: 'unit' });
        await new Promise((resolve) => setTimeout(resolve, 10));
        throw new Error('the unit rolls back');
      })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(released).toBe(false);
    open();
    await releasing;
    await unit;
    expect(await stray).toBe('reported written');
    // Committed on its own turn, before the unit's: not rolled back with the unit.
    expect(await t.texts()).toEqual(['stray']);
    await t.expectClean();
  });
});
