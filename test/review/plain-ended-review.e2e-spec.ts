import { jest } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type Repository } from 'typeorm';
import { SessionFactory } from '../../src/index.js';
import { logger } from '../../src/logger.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp } from '../correctness/support-b.js';

@Injectable()
class PlainService {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    readonly dataSource: DataSource,
  ) {}
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A plain transaction() nobody awaited, still running when its unit ends. */
describe.each(engines)("plainTypeorm: 'join', a unit ending mid-way ($name)", (engine: Engine) => {
  let t: TestApp | undefined;
  let plain: PlainService;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      imports: [TypeOrmModule.forFeature([Example])],
      providers: [PlainService],
      context: { plainTypeorm: 'join' },
    });
    plain = t.app.get(PlainService);
    factory = t.app.get(SessionFactory);
  });

  beforeEach(async () => {
    await t!.dataSource.query('DELETE FROM example');
  });

  afterAll(() => closeApp(t, engine));

  it('a fire-and-forget plain transaction() is all or nothing: never its first write without its second', async () => {
    let block: Promise<unknown> | undefined;
    await factory.runInNewContext(async () => {
      await plain.examples.insert({ text: 'unit' });
      block = plain.dataSource.transaction(async (em) => {
        await em.insert(Example, { text: 'first' });
        await sleep(50);
        await em.insert(Example, { text: 'second' });
      });
      block.catch(() => undefined);
    });
    await block?.catch(() => undefined);
    await sleep(100);
    const texts = await t!.texts();
    expect([['unit'], ['first', 'second', 'unit']]).toContainEqual(texts);
    await t!.expectClean();
  });

  it('a plain save() started after its unit ended writes nothing', async () => {
    let late: Promise<unknown> | undefined;
    await factory.runInNewContext(async () => {
      await plain.examples.insert({ text: 'unit' });
      setTimeout(() => {
        late = plain.examples.save({ text: 'late' });
        late.catch(() => undefined);
      }, 20);
    });
    await eventually(() => late !== undefined);
    await expect(late).rejects.toThrow();
    expect(await t!.texts()).toEqual(['unit']);
    await t!.expectClean();
  });
});

/** 'warn' names the caller of save(), which TypeORM runs after an await. */
describe.each(engines)("plainTypeorm: 'warn', call sites ($name)", (engine: Engine) => {
  let t: TestApp | undefined;
  let plain: PlainService;
  let factory: SessionFactory;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      imports: [TypeOrmModule.forFeature([Example])],
      providers: [PlainService],
    });
    plain = t.app.get(PlainService);
    factory = t.app.get(SessionFactory);
  });

  afterAll(() => closeApp(t, engine));

  it('a plain save() and a plain transaction() are each named at their own line, once', async () => {
    const warn = jest.spyOn(logger, 'warn');
    try {
      await factory.runInNewContext(async () => {
        for (let i = 0; i < 2; i++) {
          await plain.examples.save({ text: `s${i}` });
          await plain.dataSource.transaction((em) => em.count(Example));
        }
      });
      const lines = warn.mock.calls
        .map((call) => String(call[0]))
        .filter((line) => line.includes('plain-ended-review.e2e-spec.ts'));
      expect(lines).toHaveLength(2);
      expect(lines.some((line) => line.includes('save()'))).toBe(true);
      expect(lines.some((line) => line.includes('transaction()'))).toBe(true);
    } finally {
      warn.mockRestore();
    }
    await t!.dataSource.query('DELETE FROM example');
    await t!.expectClean();
  });
});
