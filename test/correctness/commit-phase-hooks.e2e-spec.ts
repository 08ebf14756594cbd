import { Controller, Post } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { SessionContext } from '../../src/index.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  answered,
  AUDIT,
  closeApp,
  createTwoDataSourceApp,
  type TwoDataSourceApp,
} from './support-b.js';

/** The app's SessionContext, captured after init for the module hook. */
const hook: { context?: SessionContext } = {};

@Controller('hooks')
class CommitPhaseController {
  constructor(private readonly context: SessionContext) {}

  /** Touches only 'default': the hook's write is the first use of 'audit'. */
  @Post('default-only')
  async defaultOnly() {
    await this.context.session().insert(Example, { text: 'work' });
    return 'ok';
  }

  /** Uses 'audit' first, so its session exists and comes before 'default' in commit order. */
  @Post('audit-first')
  async auditFirst() {
    await this.context.session(AUDIT).insert(Example, { text: 'handler_audit' });
    await this.context.session().insert(Example, { text: 'work' });
    return 'ok';
  }
}

/** Texts of `example` seen through `dataSource` (a fresh connection: committed rows only). */
async function texts(dataSource: DataSource): Promise<string[]> {
  const rows: Array<{ text: string }> = await dataSource.query('SELECT text FROM example');
  return rows.map((row) => row.text).sort();
}

describe.each(engines)('beforeCommit writing to another data source ($name)', (engine: Engine) => {
  let t: TwoDataSourceApp;

  beforeAll(async () => {
    t = await createTwoDataSourceApp(engine, {
      controllers: [CommitPhaseController],
      context: {
        // When 'default' commits, record it in 'audit' through the context's session.
        beforeCommit: async (_session, dataSource) => {
          if (dataSource !== 'default') return;
          await hook.context!.session(AUDIT).insert(Example, { text: 'audit_of_default' });
        },
      },
    });
    hook.context = t.app.get(SessionContext);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  it("(i) the handler never touched 'audit': the hook's audit row is committed with the request", async () => {
    const response = await answered(
      t.http().post('/hooks/default-only'),
      engine,
      'POST /hooks/default-only',
    );
    expect(response.status).toBe(201);
    // Both data sources share the test database: the rows are told apart by their text.
    expect(await texts(t.audit)).toEqual(['audit_of_default', 'work']);
  });

  it("(ii) the handler used 'audit' first (it commits before 'default'): the hook's audit row is still committed", async () => {
    const response = await answered(
      t.http().post('/hooks/audit-first'),
      engine,
      'POST /hooks/audit-first',
    );
    expect(response.status).toBe(201);
    expect(await texts(t.audit)).toEqual(['audit_of_default', 'handler_audit', 'work']);
  });
});
