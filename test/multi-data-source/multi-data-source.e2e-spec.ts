import { Controller, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, backendId, checkedOut, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const failing: { dataSource?: string } = {};
const seen: { backends?: string[] } = {};
let current: Engine;

@Controller()
class TwoDatabasesController {
  constructor(private readonly context: SessionContext) {}

  @Post('both')
  async both() {
    const main = this.context.session();
    const analytics = this.context.session('analytics');
    await main.insert(Example, { text: 'default' });
    await analytics.insert(Example, { text: 'analytics' });
    seen.backends = [await backendId(current, main), await backendId(current, analytics)];
    return 'ok';
  }
}

describe.each(engines)('several data sources ($name)', (engine) => {
  let t: TestApp;
  let analytics: DataSource;

  beforeAll(async () => {
    current = engine;
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmModule.forRoot(typeormOptions(engine, 10, 'analytics')),
        TypeOrmContextModule.forRoot({
          dataSources: ['default', 'analytics'],
          beforeCommit: (_session, name) => {
            if (failing.dataSource === name) throw new Error(`commit of ${name} refused`);
          },
        }),
      ],
      controllers: [TwoDatabasesController],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    analytics = app.get(getDataSourceToken('analytics'));
    t = wrap(app, engine, app.get(getDataSourceToken()));
  });
  beforeEach(async () => {
    failing.dataSource = undefined;
    await t.dataSource.query('DELETE FROM example');
  });
  afterEach(async () => {
    await t.expectClean();
    expect(checkedOut(analytics)).toBe(0);
  });
  afterAll(() => t.close());

  it('session(name) is a session of that data source; the interceptor commits both', async () => {
    await t.http().post('/both').expect(201);
    expect(seen.backends![0]).not.toBe(seen.backends![1]);
    expect(await t.texts()).toEqual(['analytics', 'default']);
  });

  it('when the first commit fails, the rest are rolled back and every connection is released', async () => {
    failing.dataSource = 'default';
    await t.http().post('/both').expect(500);
    expect(await t.rows()).toBe(0);
  });

  it('when a later commit fails, earlier commits stand (no two-phase commit), all released', async () => {
    failing.dataSource = 'analytics';
    await t.http().post('/both').expect(500);
    expect(await t.texts()).toEqual(['default']);
  });
});
