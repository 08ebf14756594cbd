import { Injectable } from '@nestjs/common';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { type TestApp, createTestApp } from '../support/create-app.js';
import { sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

@Injectable()
class Reader {
  constructor(private readonly context: SessionContext) {}

  @Transactional({ propagation: Propagation.REQUIRES_NEW, readOnly: true })
  async count(): Promise<number> {
    return this.context.session().count(Example);
  }
}

/**
 * Attack: a read-only REQUIRES_NEW under the testing kit on SQLite. Its BEGIN is a savepoint there
 * (readOnly does not apply, docs/testing.md): it must not leave `query_only` on for the rest of
 * the test's one long turn, nor after the test.
 */
describe.each(sqliteEngines)(
  'SQLite review 2: readOnly under the testing kit ($name)',
  (engine) => {
    let t: TestApp;

    beforeEach(async () => {
      t = await createTestApp(engine, { context: { acquireTimeout: 600 }, providers: [Reader] });
    });

    afterEach(() => t.close());

    it('writes after a read-only REQUIRES_NEW in the test, and after the test, succeed', async () => {
      const factory = t.app.get(SessionFactory);
      const context = t.app.get(SessionContext);
      const reader = t.app.get(Reader);
      const tx = await TestTransaction.start(t.app);
      await factory.runInNewContext(async () => {
        await context.session().insert(Example, { text: 'before' });
        expect(await reader.count()).toBe(1);
        await context.session().insert(Example, { text: 'after' });
      });
      expect(await reader.count()).toBe(2);
      await t.dataSource.manager.insert(Example, { text: 'body' });
      await tx.rollback();
      expect(await reader.count()).toBe(0);
      await factory.runInNewContext(() => context.session().insert(Example, { text: 'real' }));
      expect(await t.texts()).toEqual(['real']);
      await t.expectClean();
    });
  },
);
