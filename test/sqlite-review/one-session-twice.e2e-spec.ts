import { Controller, Get, Injectable, Post } from '@nestjs/common';
import { DataSource } from 'typeorm';
import {
  ConnectionAcquireTimeoutError,
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
} from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 400;

@Injectable()
class NotesService {
  constructor(private readonly context: SessionContext) {}

  @Transactional({ propagation: Propagation.NESTED })
  async nested(text: string, fail: boolean) {
    await this.context.session().insert(Example, { text });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await this.context.session().insert(Example, { text: `${text} 2` });
    if (fail) throw new Error(`${text} failed`);
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async independent(text: string) {
    await this.context.session().insert(Example, { text });
  }
}

@Controller('twice')
class TwiceController {
  constructor(
    private readonly context: SessionContext,
    private readonly notes: NotesService,
    private readonly dataSource: DataSource,
  ) {}

  /** Ten statements of one request at once, reads among the writes. */
  @Post('parallel')
  async parallel() {
    const session = this.context.session();
    const writes = Array.from({ length: 10 }, (_, i) =>
      i % 2 === 0 ? session.insert(Example, { text: `p${i}` }) : session.count(Example),
    );
    await Promise.all(writes);
    return { rows: await session.count(Example) };
  }

  /** Two NESTED blocks at once, the second fails: its savepoint alone is rolled back. */
  @Post('parallel-nested')
  async parallelNested() {
    const results = await Promise.allSettled([
      this.notes.nested('a', false),
      this.notes.nested('b', true),
      this.notes.nested('c', false),
    ]);
    return results.map((result) => result.status);
  }

  /** REQUIRES_NEW before the request's session sent anything: its own turn, then the request's. */
  @Post('requires-new-first')
  async requiresNewFirst() {
    await this.notes.independent('independent');
    await this.context.session().insert(Example, { text: 'request' });
    return 'ok';
  }

  /** REQUIRES_NEW after the request's session wrote: waits for a turn that cannot come. */
  @Post('requires-new-after')
  async requiresNewAfter() {
    await this.context.session().insert(Example, { text: 'request' });
    try {
      await this.notes.independent('independent');
      return 'ran';
    } catch (error) {
      return { name: (error as Error).name, message: (error as Error).message };
    }
  }

  /** dataSource.transaction() inside the request (plainTypeorm: 'join' joins the request). */
  @Post('plain-transaction')
  async plainTransaction() {
    await this.context.session().insert(Example, { text: 'request' });
    try {
      await this.dataSource.transaction((manager) => manager.insert(Example, { text: 'plain' }));
      return 'ran';
    } catch (error) {
      return { name: (error as Error).name, message: (error as Error).message };
    }
  }

  @Get('count')
  count() {
    return this.context.session().count(Example);
  }
}

describe.each(sqliteEngines)('SQLite review: two of a thing on one session ($name)', (engine) => {
  describe('plainTypeorm: warn', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp(engine, {
        context: { acquireTimeout: ACQUIRE },
        controllers: [TwiceController],
        providers: [NotesService],
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterAll(() => t.close());

    it('parallel statements of one request all run in its transaction', async () => {
      const response = await t.http().post('/twice/parallel').expect(201);
      expect(response.body).toEqual({ rows: 5 });
      expect(await t.rows()).toBe(5);
      await t.expectClean();
    });

    it('parallel NESTED blocks: the failed one is rolled back alone', async () => {
      const response = await t.http().post('/twice/parallel-nested').expect(201);
      expect(response.body).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await t.texts()).toEqual(['a', 'a 2', 'c', 'c 2']);
      await t.expectClean();
    });

    it('REQUIRES_NEW before the request wrote runs in its own turn, then the request commits', async () => {
      await t.http().post('/twice/requires-new-first').expect(201);
      expect(await t.texts()).toEqual(['independent', 'request']);
      await t.expectClean();
    });

    it('REQUIRES_NEW after the request wrote fails with the message that names the cause', async () => {
      const response = await t.http().post('/twice/requires-new-after').expect(201);
      expect(response.body.name).toBe(ConnectionAcquireTimeoutError.name);
      expect(response.body.message).toMatch(/REQUIRES_NEW/);
      expect(await t.texts()).toEqual(['request']);
      await t.expectClean();
    });

    it("dataSource.transaction() in a unit with 'warn' joins the unit (a savepoint) instead of waiting for itself", async () => {
      const response = await t.http().post('/twice/plain-transaction').expect(201);
      expect(response.text).toBe('ran');
      expect(await t.texts()).toEqual(['plain', 'request']);
      await t.expectClean();
    });

    it('parallel requests each commit, one after another', async () => {
      await Promise.all(
        Array.from({ length: 8 }, () => t.http().post('/twice/parallel').expect(201)),
      );
      expect(await t.rows()).toBe(40);
      await t.expectClean();
    });
  });

  describe("plainTypeorm: 'join'", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp(engine, {
        context: { acquireTimeout: ACQUIRE, plainTypeorm: 'join' },
        controllers: [TwiceController],
        providers: [NotesService],
      });
    });
    afterAll(() => t.close());

    it('dataSource.transaction() in a unit joins it (a savepoint), both rows commit', async () => {
      const response = await t.http().post('/twice/plain-transaction').expect(201);
      expect(response.text).toBe('ran');
      expect(await t.texts()).toEqual(['plain', 'request']);
      await t.expectClean();
    });

    it('plain code outside any unit while a unit holds the turn waits for it, then commits alone', async () => {
      await t.dataSource.query('DELETE FROM example');
      const factory = t.app.get(SessionFactory);
      const context = t.app.get(SessionContext);
      const unit = factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'unit' });
        await new Promise((resolve) => setTimeout(resolve, 100));
        throw new Error('unit rolls back');
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const plain = t.dataSource
        .createQueryBuilder()
        .insert()
        .into(Example)
        .values({ text: 'plain' })
        .execute();
      await expect(unit).rejects.toThrow('unit rolls back');
      await plain;
      expect(await t.texts()).toEqual(['plain']);
      await t.expectClean();
    });
  });
});
