import { Controller, Injectable, Post } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import {
  ConnectionAcquireTimeoutError,
  Propagation,
  SessionContext,
  Transactional,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 400;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class PlainService {
  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    private readonly context: SessionContext,
  ) {}

  /** The block's own manager (sessionContext.session() in a NOT_SUPPORTED block). */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async outsideBySession(text: string) {
    await this.context.session().insert(Example, { text });
  }

  /** Plain repository code outside the caller's transaction. */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async outside(text: string) {
    await this.examples.insert({ text });
    return this.examples.count();
  }
}

@Controller('ns')
class NotSupportedController {
  constructor(
    private readonly context: SessionContext,
    private readonly plain: PlainService,
  ) {}

  /** NOT_SUPPORTED before the request's session sent anything: the block takes its own turn. */
  @Post('first')
  async first() {
    const count = await this.plain.outside('outside');
    await this.context.session().insert(Example, { text: 'request' });
    return { count };
  }

  /** NOT_SUPPORTED after the request wrote: it waits for the request's own turn. */
  @Post('after')
  async after() {
    await this.context.session().insert(Example, { text: 'request' });
    try {
      await this.plain.outside('outside');
      return 'ran';
    } catch (error) {
      return { name: (error as Error).name, message: (error as Error).message };
    }
  }

  /** NOT_SUPPORTED after the request wrote, through the block's own manager. */
  @Post('after-session')
  async afterSession() {
    await this.context.session().insert(Example, { text: 'request' });
    try {
      await this.plain.outsideBySession('outside');
      return 'ran';
    } catch (error) {
      return { name: (error as Error).name, message: (error as Error).message };
    }
  }

  /** A request that holds its turn a while. */
  /** Resolved once a slow request wrote (a test waits for it, whatever the machine's load). */
  static wrote: Promise<void> = Promise.resolve();
  static noteWrite: () => void = () => undefined;

  @Post('slow')
  async slow() {
    await this.context.session().insert(Example, { text: 'slow' });
    NotSupportedController.noteWrite();
    await sleep(150);
    return 'ok';
  }
}

/** Attack: NOT_SUPPORTED blocks on one connection, in production and under the testing kit. */
describe.each(sqliteEngines)(
  'SQLite review: NOT_SUPPORTED and the testing kit ($name)',
  (engine) => {
    let t: TestApp;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        context: { acquireTimeout: ACQUIRE },
        imports: [TypeOrmModule.forFeature([Example])],
        controllers: [NotSupportedController],
        providers: [PlainService],
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterAll(() => t.close());

    it('NOT_SUPPORTED before the request wrote: runs and commits on its own turn', async () => {
      const response = await t.http().post('/ns/first').expect(201);
      expect(response.body).toEqual({ count: 1 });
      expect(await t.texts()).toEqual(['outside', 'request']);
      await t.expectClean();
    });

    it('NOT_SUPPORTED (forFeature repository) after the request wrote: fails clearly, speaking of SQLite', async () => {
      const response = await t.http().post('/ns/after').expect(201);
      expect(response.body.name).toBe(ConnectionAcquireTimeoutError.name);
      expect(response.body.message).toMatch(/SQLite/);
      expect(await t.texts()).toEqual(['request']);
      await t.expectClean();
    });

    it('NOT_SUPPORTED (its own session()) after the request wrote: the timeout message speaks of SQLite, not of a pool to enlarge', async () => {
      const response = await t.http().post('/ns/after-session').expect(201);
      expect(response.body.name).toBe(ConnectionAcquireTimeoutError.name);
      // messages.notSupportedTimeout: "Raise the pool size (TypeORM `poolSize` ...)": no pool on SQLite.
      expect(response.body.message).toMatch(/SQLite/);
      expect(response.body.message).not.toMatch(/Raise the pool size/);
      expect(await t.texts()).toEqual(['request']);
      await t.expectClean();
    });

    it('under the kit: NOT_SUPPORTED after the request wrote runs in the turn of the transaction it suspends (the kit does so on every database, docs/testing.md)', async () => {
      const tx = await TestTransaction.start(t.app);
      try {
        const response = await t.http().post('/ns/after').expect(201);
        expect(response.text).toBe('ran');
        expect(await t.texts()).toEqual(['outside', 'request']);
      } finally {
        await tx.rollback();
      }
      expect(await t.rows()).toBe(0);
      await t.expectClean();
    });

    it('under the kit: parallel requests and plain test-body code all land, then all roll back', async () => {
      const tx = await TestTransaction.start(t.app);
      try {
        const repository = t.dataSource.getRepository(Example);
        await Promise.all([
          t.http().post('/ns/slow').expect(201),
          t.http().post('/ns/slow').expect(201),
          repository.save({ text: 'body' }),
          t.dataSource.transaction((manager) => manager.insert(Example, { text: 'body tx' })),
        ]);
        expect(await t.texts()).toEqual(['body', 'body tx', 'slow', 'slow']);
      } finally {
        await tx.rollback();
      }
      expect(await t.rows()).toBe(0);
      await t.expectClean();
    });

    it('under the kit: a test that leaves a request running fails clearly, the next test starts clean', async () => {
      const tx = await TestTransaction.start(t.app, { settleTimeout: 20 });
      NotSupportedController.wrote = new Promise(
        (resolve) => (NotSupportedController.noteWrite = resolve),
      );
      const leftover = t
        .http()
        .post('/ns/slow')
        .then(
          (response) => response.status,
          () => 'failed',
        );
      await NotSupportedController.wrote; // the request is in (it wrote), not done (150 ms left)
      await expect(tx.rollback()).rejects.toThrow();
      const next = await TestTransaction.start(t.app);
      try {
        await t.http().post('/ns/first').expect(201);
        expect(await t.texts()).toEqual(['outside', 'request']);
      } finally {
        await next.rollback();
      }
      expect(await leftover).not.toBe(201);
      expect(await t.rows()).toBe(0);
      await t.expectClean();
    });
  },
);
