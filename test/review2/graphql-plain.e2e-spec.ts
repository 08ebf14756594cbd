import { Args, Mutation, Query, Resolver } from '@nestjs/graphql';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type Repository } from 'typeorm';
import { SessionContext } from '../../src/index.js';
import { createGraphqlApp, type GraphqlApp } from '../graphql/graphql-app.js';
import { engines, type Engine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { recordingLogger } from './review2-app.js';

const probe: { engine?: Engine } = {};

@Resolver()
class PlainResolver {
  constructor(
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    private readonly dataSource: DataSource,
    private readonly context: SessionContext,
  ) {}

  /** A plain write; answers whether plain code ran in the operation's transaction. */
  @Mutation(() => String)
  async plainWrite(@Args('tag') tag: string): Promise<string> {
    await this.examples.insert({ text: tag });
    const plain = await txid(probe.engine!, this.dataSource.manager);
    const session = await txid(probe.engine!, this.context.session());
    return plain !== null && plain === session ? 'same' : `plain ${plain} session ${session}`;
  }

  @Query(() => String, { nullable: true })
  async plainRead(@Args('tag') tag: string): Promise<string> {
    await this.dataSource.query('INSERT INTO example (text) VALUES ($1)'.replace('$1', `'${tag}'`));
    return String(await this.examples.countBy({ text: tag }));
  }

  @Query(() => String, { nullable: true })
  async plainFail(@Args('tag') tag: string): Promise<string> {
    await this.examples.insert({ text: tag });
    throw new Error(`refused ${tag}`);
  }
}

describe.each(engines)('plainTypeorm in GraphQL operations (Apollo, $name)', (engine) => {
  describe("'join'", () => {
    let t: GraphqlApp;
    beforeAll(async () => {
      probe.engine = engine;
      t = await createGraphqlApp(engine, {
        driver: 'apollo',
        context: { plainTypeorm: 'join' },
        imports: [TypeOrmModule.forFeature([Example])],
        providers: [PlainResolver],
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it("a plain repository in a resolver runs in the operation's transaction and commits with it", async () => {
      const response = await t.gql('mutation { a: plainWrite(tag: "a") b: plainWrite(tag: "b") }');
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ a: 'same', b: 'same' });
      expect(await t.texts()).toEqual(['a', 'b']);
    });

    it("a failed field rolls back its sibling's and its own plain writes", async () => {
      const response = await t.gql('{ ok: plainRead(tag: "kept") bad: plainFail(tag: "failed") }');
      expect(response.errors?.[0]?.message).toBe('refused failed');
      expect(response.data).toEqual({ ok: '1', bad: null });
      expect(await t.texts()).toEqual([]);
    });
  });

  describe("'warn'", () => {
    const warnings: string[] = [];
    let t: GraphqlApp;
    beforeAll(async () => {
      probe.engine = engine;
      t = await createGraphqlApp(engine, {
        driver: 'apollo',
        context: { plainTypeorm: 'warn' },
        imports: [TypeOrmModule.forFeature([Example])],
        providers: [PlainResolver],
        logger: recordingLogger(warnings),
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('names each plain call site of a resolver once, however many operations run it', async () => {
      for (let i = 0; i < 3; i++) await t.gql(`mutation { plainWrite(tag: "w${i}") }`);
      await t.gql('{ probe(tag: "own") { tag } }'); // the library's own session: no warning
      const plain = warnings.filter((w) => w.includes('Plain TypeORM code'));
      // The resolver's insert() is named once, at the resolver's line; the txid probe's query()
      // through dataSource.manager once per line of the helper it runs from.
      const inserts = plain.filter((w) => w.includes('(insert()'));
      expect(inserts).toHaveLength(1);
      expect(inserts[0]).toContain('graphql-plain.e2e-spec.ts:');
      expect(plain.filter((w) => !w.includes('engines.ts:') && !w.includes('(insert()'))).toEqual(
        [],
      );
      // Outside the operation's transaction: committed although each operation's txid differs.
      expect(await t.texts()).toEqual(['own', 'w0', 'w1', 'w2']);
    });
  });
});
