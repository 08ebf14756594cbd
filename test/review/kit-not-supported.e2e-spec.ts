import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { settle, within } from '../correctness/support-a.js';
import { typeormOptions } from '../support/create-app.js';
import { checkedOut, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/*
 * docs/testing.md: "Every session of the app uses that connection: HTTP requests, ...,
 * runInNewContext(), ..., REQUIRES_NEW blocks, ... Each unit of work, block or independent session
 * is a SAVEPOINT", and "A unit that begins inside the code of another (a REQUIRES_NEW block or a
 * factory session used from a request) nests in it". "What cannot be tested this way" does not name
 * NOT_SUPPORTED, and docs/transactions.md recommends NOT_SUPPORTED for work that must not be part
 * of the request's transaction. Found: a NOT_SUPPORTED block in a unit whose transaction has begun
 * (it works on any real pool of 2+) always fails under the kit after acquireTimeout, with a
 * ConnectionAcquireTimeoutError whose message blames "plain TypeORM (the DataSource's own query(),
 * manager or repositories ...)" and advises "use its session", which the user did not call.
 * Expected: the block's statements nest in the unit like REQUIRES_NEW does; or else testing.md
 * lists NOT_SUPPORTED under "What cannot be tested this way" and the message names NOT_SUPPORTED.
 */
describe.each(engines)('review: NOT_SUPPORTED inside a TestTransaction ($name)', (engine) => {
  let app: INestApplication;
  let dataSource: DataSource;
  let factory: SessionFactory;
  let context: SessionContext;

  const texts = async () =>
    (
      (await dataSource.query('SELECT text FROM example ORDER BY text')) as Array<{ text: string }>
    ).map((row) => row.text);

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmContextModule.forRoot({ acquireTimeout: 500 }),
        TypeOrmModule.forFeature([Example]),
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    dataSource = app.get(DataSource);
    factory = app.get(SessionFactory);
    context = app.get(SessionContext);
    await dataSource.query('DELETE FROM example');
  });
  afterEach(() => dataSource.query('DELETE FROM example'));
  afterAll(() => within(app.close(), 'app.close()'));

  it('a NOT_SUPPORTED block in a unit whose transaction has begun: its write is seen by the test, then rolled back', async () => {
    const tx = await TestTransaction.start(app);
    let outcome: unknown;
    let seen: string[] | undefined;
    try {
      outcome = await within(
        factory
          .runInNewContext(async () => {
            await context.session().insert(Example, { text: 'outer' });
            await context.atomic((manager) => manager.insert(Example, { text: 'audit' }), {
              propagation: Propagation.NOT_SUPPORTED,
            });
            return 'ok';
          })
          .catch((error: Error) => `${error.name}: ${error.message}`),
        'a unit with a NOT_SUPPORTED block under the kit',
      );
      seen = await texts();
    } finally {
      await settle(tx.rollback(), 'tx.rollback()');
    }
    expect({ outcome, seen }).toEqual({ outcome: 'ok', seen: ['audit', 'outer'] });
    expect(await texts()).toEqual([]);
    expect(checkedOut(dataSource)).toBe(0);
  });
});
