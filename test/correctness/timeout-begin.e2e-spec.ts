import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { Logger } from 'typeorm';
import { SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';

/** Every statement TypeORM hands to the driver, one entry per round trip. */
const sent: string[] = [];

const recorder: Logger = {
  logQuery: (query) => void sent.push(query),
  logQueryError: () => undefined,
  logQuerySlow: () => undefined,
  logSchemaBuild: () => undefined,
  logMigration: () => undefined,
  log: () => undefined,
};

const postgres = engines.filter((engine) => engine.name === 'postgres');

describe.each(postgres)('the timeout option on PostgreSQL ($name)', (engine) => {
  let t: TestApp;
  let factory: SessionFactory;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...typeormOptions(engine), logging: ['query'], logger: recorder }),
        TypeOrmContextModule.forRoot(),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    factory = app.get(SessionFactory);
    t = wrap(app, engine, app.get(getDataSourceToken()));
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('SET LOCAL statement_timeout goes to the server with the START TRANSACTION, in one round trip', async () => {
    sent.length = 0;
    const setting = await factory.atomic(
      async (manager) => {
        const rows: Array<{ statement_timeout: string }> =
          await manager.query('SHOW statement_timeout');
        return rows[0]?.statement_timeout;
      },
      { timeout: 1500 },
    );
    // The server applied it to the block's transaction ...
    expect(setting).toBe('1500ms');
    // ... and it travelled with the BEGIN: one round trip before the block's own statement.
    const before = sent.slice(0, sent.indexOf('SHOW statement_timeout'));
    expect(before).toHaveLength(1);
    expect(before[0]).toMatch(/^START TRANSACTION.*;\s*SET LOCAL statement_timeout = 1500$/);
  });
});
