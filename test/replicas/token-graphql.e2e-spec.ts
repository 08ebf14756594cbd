import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, GraphQLModule, Mutation, Query, Resolver } from '@nestjs/graphql';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { createReplicaApp, pauseReplay, type ReplicaApp, resumeReplay } from './replica-app.js';
import { ReplicaItem, where } from './replica-item.js';

const HEADER = 'x-consistency-token';

/** A mutation that writes, and a query that reads in a read-only transaction of its own. */
@Resolver()
class TokenResolver {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Mutation(() => Boolean)
  async write(@Args('text') text: string): Promise<boolean> {
    await this.context.session().insert(ReplicaItem, { text });
    return true;
  }

  /** `replica:<bool> seen:<n>`. */
  @Query(() => String)
  read(@Args('text') text: string): Promise<string> {
    return this.factory.atomic(
      async (manager) =>
        `replica:${(await where(manager)).replica} seen:${await manager.countBy(ReplicaItem, { text })}`,
      { readOnly: true },
    );
  }
}

/** Consistency tokens on a GraphQL operation's unit (Apollo over Express): ended by the operation, not the interceptor. */
describe('Read replicas: consistency tokens over GraphQL', () => {
  let t: ReplicaApp;
  beforeAll(async () => {
    t = await createReplicaApp({
      context: { consistency: { header: HEADER } },
      imports: [
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          autoSchemaFile: true,
          graphiql: false,
        }),
      ],
      providers: [TokenResolver],
    });
  });
  afterEach(() => resumeReplay());
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  const gql = (query: string, token?: string) => {
    const call = t.http().post('/graphql').send({ query });
    return token ? call.set(HEADER, token) : call;
  };

  it('a mutation that committed sends its token; a query that carries it reads on the primary while replay is paused', async () => {
    await pauseReplay();
    const written = await gql('mutation { write(text: "g") }').expect(200);
    expect(written.body.errors).toBeUndefined();
    const token = written.headers[HEADER] as string;
    expect(token).toMatch(/^default=[0-9A-F]+\/[0-9A-F]+$/);
    const carried = await gql('{ read(text: "g") }', token).expect(200);
    expect(carried.body.data.read).toBe('replica:false seen:1');
    expect(carried.headers[HEADER]).toBeUndefined();
    const bare = await gql('{ read(text: "g") }').expect(200);
    expect(bare.body.data.read).toBe('replica:true seen:0');
  });

  it('a mutation that failed (rolled back) sends no token', async () => {
    const failed = await gql('mutation { write(text: "' + 'x'.repeat(300) + '") }').expect(200);
    expect(failed.body.errors).toHaveLength(1);
    expect(failed.headers[HEADER]).toBeUndefined();
  });
});
