import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  DataSource,
  type EntitySubscriberInterface,
  EventSubscriber,
  type InsertEvent,
} from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 600;

/** After each insert of a `*_audited` row, one more row through the PLAIN manager (not event.manager). */
@EventSubscriber()
class PlainAuditSubscriber implements EntitySubscriberInterface<Example> {
  listenTo() {
    return Example;
  }

  async afterInsert(event: InsertEvent<Example>): Promise<void> {
    if (!event.entity.text?.endsWith('_audited')) return;
    await event.connection.manager.insert(Example, { text: `${event.entity.text}_audit` });
  }
}

/**
 * Attack: a subscriber that writes through the data source's plain manager while the statement
 * that fired it runs. On TypeORM's own SQLite drivers (one shared runner) this runs inside the
 * save's transaction; plain code now takes turns on the one connection.
 */
describe.each(sqliteEngines)('SQLite review 2: a plain subscriber ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;
  let context: SessionContext;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(engine), subscribers: [PlainAuditSubscriber] }),
        TypeOrmContextModule.forRoot({ acquireTimeout: ACQUIRE }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    t = wrap(app, engine, app.get(DataSource));
    factory = app.get(SessionFactory);
    context = app.get(SessionContext);
  });

  afterEach(() => t.close());

  it("inside a unit: the session's save and the subscriber's plain insert both commit", async () => {
    await factory.runInNewContext(() => context.session().save(Example, { text: 'unit_audited' }));
    expect(await t.texts()).toEqual(['unit_audited', 'unit_audited_audit']);
    await t.expectClean();
  });

  it('inside a unit: a plain save firing the plain subscriber commits both', async () => {
    await factory.runInNewContext(() =>
      t.dataSource.manager.save(Example, { text: 'plain_audited' }),
    );
    expect(await t.texts()).toEqual(['plain_audited', 'plain_audited_audit']);
    await t.expectClean();
  });

  // A documented limit (docs/sqlite.md): plain code nested in a plain transaction through
  // another manager waits for that transaction's turn; the message names the cause and the fix.
  it('outside any unit: a plain save whose subscriber writes through the plain manager fails after acquireTimeout, naming event.manager', async () => {
    const outcome = await t.dataSource.manager.save(Example, { text: 'script_audited' }).then(
      () => 'saved',
      (error: Error) => `${error.name}: ${error.message}`,
    );
    expect(outcome).toMatch(/^ConnectionAcquireTimeoutError: .*event\.manager/);
    expect(await t.texts()).toEqual([]);
    await t.expectClean();
  });

  it("outside any unit: the plain manager used inside a plain dataSource.transaction() fails after acquireTimeout, naming the transaction's manager", async () => {
    const outcome = await t.dataSource
      .transaction(async (manager) => {
        await manager.insert(Example, { text: 'through the transaction' });
        // A common slip: the injected repository / data source manager instead of `manager`.
        await t.dataSource.manager.insert(Example, { text: 'through the data source' });
      })
      .then(
        () => 'committed',
        (error: Error) => `${error.name}: ${error.message}`,
      );
    expect(outcome).toMatch(/^ConnectionAcquireTimeoutError: .*the transaction's manager/);
    expect(await t.texts()).toEqual([]);
    await t.expectClean();
  });
});
