import { type CanActivate, Controller, Injectable, Post, Query, UseGuards } from '@nestjs/common';
import { InjectDataSource, InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type Repository } from 'typeorm';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const ACQUIRE = 600;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Plain TypeORM only: a forFeature() repository and the DataSource. */
@Injectable()
class PlainService {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    @InjectDataSource() readonly dataSource: DataSource,
  ) {}

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async ownBlockThatFails(text: string): Promise<void> {
    await this.examples.save({ text });
    throw new Error('own block fails');
  }

  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async autocommit(text: string): Promise<void> {
    await this.examples.save({ text });
  }
}

/** A guard that reads through plain TypeORM before the handler. */
@Injectable()
class CountingGuard implements CanActivate {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}
  async canActivate(): Promise<boolean> {
    return (await this.dataSource.manager.count(Example)) >= 0;
  }
}

@Controller('plain')
class PlainController {
  constructor(
    private readonly service: PlainService,
    private readonly context: SessionContext,
  ) {}

  @Post('guarded')
  @UseGuards(CountingGuard)
  async guarded(@Query('text') text: string): Promise<string> {
    await this.context.session().insert(Example, { text });
    return 'ok';
  }
}

/**
 * Attack: on SQLite `plainTypeorm: 'warn'` (the default) now joins the unit's session. Plain code
 * in the places a unit begins, ends, nests or suspends.
 */
describe.each(sqliteEngines)("SQLite review 2: plain 'warn' joins the unit ($name)", (engine) => {
  let t: TestApp;
  let service: PlainService;
  let context: SessionContext;
  let factory: SessionFactory;

  beforeEach(async () => {
    t = await createTestApp(engine, {
      context: { acquireTimeout: ACQUIRE },
      imports: [TypeOrmModule.forFeature([Example])],
      providers: [PlainService, CountingGuard],
      controllers: [PlainController],
    });
    service = t.app.get(PlainService);
    context = t.app.get(SessionContext);
    factory = t.app.get(SessionFactory);
  });

  afterEach(() => t.close());

  it('a plain save in an afterCommit callback writes its row (the unit has committed)', async () => {
    let saved: Promise<unknown> | undefined;
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'unit' });
      context.afterCommit(() => {
        saved = service.examples.save({ text: 'after commit' });
        return saved;
      });
    });
    await sleep(50);
    await expect(saved).resolves.toBeDefined();
    expect(await t.texts()).toEqual(['after commit', 'unit']);
    await t.expectClean();
  });

  it('a plain dataSource.transaction() that fails inside a unit undoes only its own rows; the unit commits the rest', async () => {
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'before' });
      await service.dataSource
        .transaction(async (manager) => {
          await manager.insert(Example, { text: 'in failed block' });
          throw new Error('block fails');
        })
        .catch(() => undefined);
      await service.examples.save({ text: 'after' });
    });
    expect(await t.texts()).toEqual(['after', 'before']);
    await t.expectClean();
  });

  it('plain code in a REQUIRES_NEW block that fails is undone with it; the outer unit commits', async () => {
    let failure: unknown;
    await factory.runInNewContext(async () => {
      // First: the unit's own transaction has not begun, so the block gets the next turn.
      failure = await service.ownBlockThatFails('own').catch((error: Error) => error);
      await service.examples.save({ text: 'outer' });
    });
    expect((failure as Error | undefined)?.message).toBe('own block fails');
    expect(await t.texts()).toEqual(['outer']);
    await t.expectClean();
  });

  it('plain code in sessionFactory.atomic() commits with it', async () => {
    await factory.atomic(async () => {
      await service.examples.save({ text: 'atomic' });
    });
    expect(await t.texts()).toEqual(['atomic']);
    await t.expectClean();
  });

  it('plain code in a NOT_SUPPORTED block, before the unit began its transaction, autocommits', async () => {
    await factory
      .runInNewContext(async () => {
        await service.autocommit('autocommit');
        throw new Error('unit fails');
      })
      .catch(() => undefined);
    expect(await t.texts()).toEqual(['autocommit']);
    await t.expectClean();
  });

  it("plain calls in parallel with the session's own statements all land in the unit", async () => {
    await factory.runInNewContext(async () => {
      await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          n % 2 === 0
            ? context.session().insert(Example, { text: `session ${n}` })
            : service.examples.save({ text: `plain ${n}` }),
        ),
      );
    });
    expect(await t.rows()).toBe(8);
    await t.expectClean();
  });

  it('a plain save the unit did not await, run after it ended, writes its row (as plain code does after a unit elsewhere)', async () => {
    let late: Promise<unknown> | undefined;
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'unit' });
      late = sleep(30).then(() => service.examples.save({ text: 'late' }));
    });
    const outcome = await late!.then(
      () => 'saved',
      (error: Error) => `${error.name}: ${error.message}`,
    );
    expect(outcome).toBe('saved');
    expect(await t.texts()).toEqual(['late', 'unit']);
    await t.expectClean();
  });

  it('plain code after its unit ended fails with a message that names plain TypeORM, not a session', async () => {
    let late: Promise<unknown> | undefined;
    await factory.runInNewContext(async () => {
      await context.session().insert(Example, { text: 'unit' });
      late = sleep(30).then(() => service.dataSource.query('SELECT 1'));
    });
    const error = await late!.then(
      () => undefined,
      (failure: Error) => failure,
    );
    // If it fails at all, the user must learn it was their plain call, and what to do with it.
    if (error !== undefined) expect(error.message).toMatch(/plain TypeORM|plainTypeorm/);
    else expect(error).toBeUndefined();
  });

  it('a plain read in a guard before the handler does not keep the request from writing', async () => {
    await t.http().post('/plain/guarded?text=guarded').expect(201);
    expect(await t.texts()).toEqual(['guarded']);
    await t.expectClean();
  });
});
