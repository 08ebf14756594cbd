import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { typeormOptions } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

describe.each(enginesAndSqlite)('TypeOrmContextModule.forRootAsync ($name)', (engine) => {
  it('takes its options from a factory, hooks included', async () => {
    const started: string[] = [];
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmContextModule.forRootAsync({
          useFactory: async () => ({
            dataSources: ['default'],
            onSessionStart: (_session, name) => {
              started.push(name);
            },
          }),
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      await app.get(DataSource).query('DELETE FROM example');
      await app
        .get(SessionFactory)
        .runInNewContext(() =>
          app.get(SessionContext).session().insert(Example, { text: 'async_options' }),
        );
      expect(started).toEqual(['default']);
      expect(await app.get(DataSource).getRepository(Example).count()).toBe(1);
    } finally {
      await app.close();
    }
  });
});
