import { Propagation, SessionContext } from '../../src/index.js';
import { enginesAndSqlite } from '../support/engines.js';
import { startPlainApp, type PlainApp } from './plain-app.js';

describe.each(enginesAndSqlite)(
  "plainTypeorm: 'join' in a block whose manager is the plain one ($name)",
  (engine) => {
    let t: PlainApp;

    beforeAll(async () => {
      t = await startPlainApp(engine, { plainTypeorm: 'join' });
    });
    afterEach(async () => {
      await t.expectClean();
      await t.dataSource.query('DELETE FROM example');
    });
    afterAll(() => t.close());

    it('a SUPPORTS block outside any unit runs plain code as TypeORM does (its manager is the plain one itself)', async () => {
      const context = t.app.get(SessionContext);
      await context.atomic(
        async () => {
          await t.service.addThroughManager('supports_manager');
          await t.service.add('supports_repo');
        },
        { propagation: Propagation.SUPPORTS },
      );
      expect(await t.texts()).toEqual(['supports_manager', 'supports_repo']);
    });

    it('a NOT_SUPPORTED block outside any unit does the same', async () => {
      await t.service.notSupported('not_supported');
      expect(await t.texts()).toEqual(['not_supported']);
    });
  },
);
