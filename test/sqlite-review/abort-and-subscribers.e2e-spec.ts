import { Controller, Injectable, Post } from '@nestjs/common';
import {
  DataSource,
  type EntitySubscriberInterface,
  EventSubscriber,
  type InsertEvent,
} from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Three requests of ~200 ms each queue for the one writer: the bound leaves room for a slow machine. */
const ACQUIRE = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts rows through the inserting manager after each insert; throws on the text 'boom'. */
@Injectable()
@EventSubscriber()
class CountingSubscriber implements EntitySubscriberInterface<Example> {
  static seen: number[] = [];

  constructor(dataSource: DataSource) {
    dataSource.subscribers.push(this);
  }

  listenTo() {
    return Example;
  }

  async afterInsert(event: InsertEvent<Example>) {
    CountingSubscriber.seen.push(await event.manager.count(Example));
    if (event.entity.text === 'boom') throw new Error('subscriber refused');
  }
}

@Controller('abort')
class AbortController {
  constructor(private readonly context: SessionContext) {}

  /** Writes, waits, writes again: a client may leave in between. */
  @Post('slow')
  async slow() {
    await this.context.session().insert(Example, { text: 'first' });
    await sleep(200);
    await this.context.session().insert(Example, { text: 'second' });
    return 'ok';
  }
}

/** Attack: a client that leaves mid-transaction; subscribers that query or throw on one connection. */
describe.each(sqliteEngines)('SQLite review: aborts and subscribers ($name)', (engine) => {
  let t: TestApp;

  beforeEach(async () => {
    CountingSubscriber.seen = [];
    t = await createTestApp(engine, {
      context: { acquireTimeout: ACQUIRE },
      controllers: [AbortController],
      providers: [CountingSubscriber],
    });
  });

  afterEach(() => t.close());

  it('a client that aborts mid-transaction: all or nothing of its rows, the next requests work', async () => {
    await t
      .http()
      .post('/abort/slow')
      .timeout(50)
      .catch(() => undefined);
    await Promise.all([
      t.http().post('/abort/slow').expect(201),
      t.http().post('/abort/slow').expect(201),
    ]);
    await t.expectClean();
    const texts = await t.texts();
    expect(texts.filter((text) => text === 'first').length).toBe(
      texts.filter((text) => text === 'second').length,
    );
    expect(texts.filter((text) => text === 'first').length).toBeGreaterThanOrEqual(2);
  });

  it('a subscriber that queries through the event manager runs in the unit, on its turn', async () => {
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'a' });
      await context.session().save(Example, { text: 'b' });
    });
    expect(CountingSubscriber.seen).toEqual([1, 2]);
    expect(await t.texts()).toEqual(['a', 'b']);
    await t.expectClean();
  });

  it('a throwing subscriber fails its unit, which rolls back; the next turn works', async () => {
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    await expect(
      factory.runInNewContext(async () => {
        await context.session().save(Example, { text: 'ok' });
        await context.session().save(Example, { text: 'boom' });
      }),
    ).rejects.toThrow('subscriber refused');
    await t.dataSource.getRepository(Example).save({ text: 'plain' });
    await expect(t.dataSource.getRepository(Example).save({ text: 'boom' })).rejects.toThrow(
      'subscriber refused',
    );
    await factory.runInNewContext(() => context.session().save(Example, { text: 'next' }));
    expect(await t.texts()).toEqual(['next', 'plain']);
    await t.expectClean();
  });
});
