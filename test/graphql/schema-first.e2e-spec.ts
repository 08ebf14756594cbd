import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { Args, GraphQLModule, Mutation, Parent, ResolveField, Resolver } from '@nestjs/graphql';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, TypeOrmContextModule } from '../../src/index.js';
import { closeApp } from '../correctness/support-b.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import { type Engine, engines, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const typeDefs = /* GraphQL */ `
  type Query {
    ping: String
  }
  type Mutation {
    add(tag: String!): Item!
    addFail(tag: String!): String
  }
  type Item {
    tag: String!
    txid: String!
    detail: Item!
  }
`;

const current = { engine: undefined as Engine | undefined };

/** Schema-first resolvers: the same resolver classes, bound to the SDL by name. */
@Resolver('Item')
class ItemResolver {
  constructor(private readonly context: SessionContext) {}

  private async add(tag: string) {
    const session = this.context.session();
    await session.insert(Example, { text: tag });
    return { tag, txid: String(await txid(current.engine!, session)) };
  }

  @Mutation('add')
  addRoot(@Args('tag') tag: string) {
    return this.add(tag);
  }

  @Mutation('addFail')
  async addFail(@Args('tag') tag: string): Promise<string> {
    await this.add(tag);
    throw new Error(`refused ${tag}`);
  }

  @ResolveField('detail')
  detail(@Parent() item: { tag: string }) {
    return this.add(`${item.tag}:detail`);
  }
}

const drivers = ['apollo', 'mercurius'] as const;
const cases = engines.flatMap((engine) => drivers.map((driver) => ({ engine, driver })));

describe.each(cases)('GraphQL schema-first ($driver, $engine.name)', ({ engine, driver }) => {
  let t: TestApp;

  beforeAll(async () => {
    current.engine = engine;
    const graphql =
      driver === 'apollo'
        ? GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, typeDefs })
        : GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, typeDefs });
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(typeormOptions(engine)),
        TypeOrmContextModule.forRoot(),
        graphql,
      ],
      providers: [ItemResolver],
    }).compile();
    const app =
      driver === 'apollo'
        ? moduleRef.createNestApplication({ logger: false })
        : moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
    await app.init();
    if (driver === 'mercurius') await app.getHttpAdapter().getInstance().ready();
    t = wrap(app, engine, app.get(DataSource));
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => closeApp(t, engine));

  const gql = async (query: string) =>
    (await t.http().post('/graphql').send({ query })).body as {
      data?: Record<string, { txid: string; detail: { txid: string } }> | null;
      errors?: Array<{ message: string }>;
    };

  it('a mutation and its field resolver share one transaction, committed', async () => {
    const body = await gql('mutation { add(tag: "s") { txid detail { txid } } }');
    expect(body.errors).toBeUndefined();
    expect(body.data!.add!.detail.txid).toBe(body.data!.add!.txid);
    expect(await t.texts()).toEqual(['s', 's:detail']);
  });

  it("the second mutation's failure rolls back the first", async () => {
    const body = await gql(
      'mutation { one: add(tag: "x") { txid detail { txid } } two: addFail(tag: "y") }',
    );
    expect(body.errors?.[0]?.message).toBe('refused y');
    expect(await t.rows()).toBe(0);
  });
});
