import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  InvalidOptionError,
  Propagation,
  SessionFactory,
  TypeOrmContextModule,
} from '../../src/index.js';
import { TestTransaction } from '../../src/testing/index.js';
import { countOnPrimary, createReplicaApp, pair, portOf, type ReplicaApp } from './replica-app.js';
import { ReplicaItem, where } from './replica-item.js';

describe('Read replicas: options and the testing kit', () => {
  let t: ReplicaApp;
  let factory: SessionFactory;
  const { primary, replica } = pair();

  beforeAll(async () => {
    t = await createReplicaApp();
    factory = t.app.get(SessionFactory);
  });
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it.each([
    [{ readReplicas: 'untilFirstWrite' }, /readReplicas: 'untilFirstWrite'.*no 'untilFirstWrite'/],
    [{ readReplicas: true }, /readReplicas: true/],
    [{ replicaDown: 'retry' }, /replicaDown: 'retry'. Expected 'primary' or 'fail'/],
    [{ replicasDown: 'fail' }, /'replicaDown' \(a typo\?\)/],
  ])('module option %j is refused at startup', async (options, message) => {
    const building = Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: primary }),
        TypeOrmContextModule.forRoot(options as never),
      ],
    }).compile();
    await expect(building).rejects.toThrow(message);
  });

  it.each([
    [{ replica: true }, /replica: true only with readOnly: true/],
    [{ readOnly: true, replica: 'no' }, /Invalid option replica: 'no'/],
    [
      { readOnly: true, replica: false, propagation: Propagation.SUPPORTS },
      /readOnly with Propagation.SUPPORTS/,
    ],
    [{ replica: false, propagation: Propagation.NEVER }, /replica with Propagation.NEVER/],
  ])('transaction options %j are refused before anything runs', async (options, message) => {
    const running = factory.atomic(where, options as never);
    await expect(running).rejects.toThrow(InvalidOptionError);
    await expect(factory.atomic(where, options as never)).rejects.toThrow(message);
    expect(() => factory.open(options as never)).toThrow();
  });

  it("readReplicas: 'off' keeps read-only transactions on the primary", async () => {
    const off = await createReplicaApp({ context: { readReplicas: 'off' } });
    try {
      const result = await off.app.get(SessionFactory).atomic(where, { readOnly: true });
      expect(result).toEqual({ replica: false, port: portOf(primary) });
    } finally {
      await off.close();
    }
  });

  it('TestTransaction: every session runs on the test connection to the primary, read-only ones too', async () => {
    const tx = await TestTransaction.start(t.app);
    try {
      await t.dataSource.getRepository(ReplicaItem).insert({ text: 'in-test' });
      const { body } = await t.http().get('/read/in-test').expect(200);
      // The primary, and inside the test's transaction: it sees the test's uncommitted row.
      expect(body).toEqual({ replica: false, port: portOf(primary), seen: 1 });
      expect(await factory.atomic(where, { readOnly: true })).toEqual({
        replica: false,
        port: portOf(primary),
      });
      // TypeORM's own reads outside any context (createQueryRunner('slave')) too.
      expect(await where(t.dataSource.manager)).toEqual({ replica: false, port: portOf(primary) });
    } finally {
      await tx.rollback();
    }
    expect(await countOnPrimary(t.dataSource, 'in-test')).toBe(0);
    // After the test transaction: back to the replica.
    expect(await factory.atomic(where, { readOnly: true })).toEqual({
      replica: true,
      port: portOf(replica),
    });
  });
});
