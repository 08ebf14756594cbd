import { Controller, Post } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { settle } from './support-a.js';

/** A table of this file's own, for DDL to act on. */
const SCRATCH = 'implicit_commit_scratch';

@Controller('implicit')
class ImplicitCommitController {
  constructor(
    private readonly context: SessionContext,
    @InjectRepository(Example) private readonly examples: Repository<Example>,
  ) {}

  /** `repository.clear()` (TRUNCATE) mid-transaction, then a write, then the request fails. */
  @Post('truncate-then-fail')
  async truncateThenFail() {
    const session = this.context.session();
    await session.query('SELECT 1');
    await this.examples.clear();
    await this.examples.insert({ text: 'after_truncate' });
    throw new Error('the request fails after the TRUNCATE');
  }
}

// MySQL/MariaDB commit the transaction implicitly before (and after) DDL and TRUNCATE.
const mariadb = engines.filter((engine) => engine.name === 'mariadb');

for (const engine of mariadb)
  describe(`DDL in a session does not leave later statements autocommitting (${engine.name})`, () => {
    let t: TestApp;
    let context: SessionContext;
    let factory: SessionFactory;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        controllers: [ImplicitCommitController],
        imports: [TypeOrmContextModule.forFeature([Example])],
      });
      context = t.app.get(SessionContext);
      factory = t.app.get(SessionFactory);
      await t.dataSource.query(`DROP TABLE IF EXISTS ${SCRATCH}`);
    });
    beforeEach(async () => {
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => t.expectClean());
    afterAll(async () => {
      await t.dataSource.query(`DROP TABLE IF EXISTS ${SCRATCH}`);
      await t.close();
    });

    it('CREATE TABLE commits what came before; what comes after is in a new transaction that a failure undoes', async () => {
      const result = await settle(
        factory.runInNewContext(async () => {
          const session = context.session();
          await session.insert(Example, { text: 'before_ddl' });
          await session.query(`CREATE TABLE ${SCRATCH} (id INT PRIMARY KEY)`);
          await session.insert(Example, { text: 'after_ddl' });
          throw new Error('the job fails after the DDL');
        }),
        'runInNewContext()',
      );
      await t.dataSource.query(`DROP TABLE IF EXISTS ${SCRATCH}`);
      expect(result).toMatchObject({ ok: false, message: 'the job fails after the DDL' });
      // The server committed the work before the DDL (the library cannot undo that), but the
      // statement after it ran inside a transaction, rolled back with the job.
      expect(await t.texts()).toEqual(['before_ddl']);
    });

    it('repository.clear() (TRUNCATE) in a request that then fails: the later insert is rolled back', async () => {
      await t.dataSource.query("INSERT INTO example (text) VALUES ('existing')");
      await t.http().post('/implicit/truncate-then-fail').expect(500);
      expect(await t.texts()).toEqual([]);
    });

    it('a session that ran DDL commits what came after it at its commit', async () => {
      await factory.runInNewContext(async () => {
        const session = context.session();
        await session.query(`CREATE TABLE ${SCRATCH} (id INT PRIMARY KEY)`);
        await session.insert(Example, { text: 'after_ddl' });
      });
      await t.dataSource.query(`DROP TABLE IF EXISTS ${SCRATCH}`);
      expect(await t.texts()).toEqual(['after_ddl']);
    });
  });
