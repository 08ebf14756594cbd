/**
 * Round two: consistency tokens over GraphQL on every HTTP driver (Apollo on Express, Apollo on
 * Fastify, Mercurius), single operations and batches: the write's row on the primary, the token
 * on the response, and a later read with it on a server that has the row.
 */
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { Module } from '@nestjs/common';
import {
  Args,
  Field,
  GraphQLModule,
  Int,
  Mutation,
  ObjectType,
  Query,
  Resolver,
} from '@nestjs/graphql';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { pauseReplay, resumeReplay } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { createReviewApp, HEADER, onPrimary, type ReviewApp, seen } from './review-app.js';

@ObjectType()
class SeenType {
  @Field() replica!: boolean;
  @Field(() => Int) seen!: number;
}

@Resolver()
class TokenResolver {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Query(() => SeenType)
  read(@Args('tag') tag: string) {
    return this.factory.atomic((manager) => seen(manager, tag), { readOnly: true });
  }

  @Mutation(() => String)
  async write(@Args('tag') tag: string): Promise<string> {
    await this.context.session().insert(ReplicaItem, { text: tag });
    return tag;
  }
}

type Driver = 'apollo' | 'apollo-fastify' | 'mercurius';

function graphqlModule(driver: Driver) {
  const common = { autoSchemaFile: true as const };
  if (driver === 'mercurius') {
    return GraphQLModule.forRoot<MercuriusDriverConfig>({
      driver: MercuriusDriver,
      ...common,
      allowBatchedQueries: true,
    });
  }
  return GraphQLModule.forRoot<ApolloDriverConfig>({
    driver: ApolloDriver,
    ...common,
    allowBatchedHttpRequests: true,
  });
}

@Module({ providers: [TokenResolver] })
class ResolverModule {}

describe.each<Driver>(['apollo', 'apollo-fastify', 'mercurius'])(
  'round two: GraphQL tokens (%s)',
  (driver) => {
    let t: ReviewApp;
    beforeAll(async () => {
      t = await createReviewApp({
        fastify: driver !== 'apollo',
        context: { consistency: { header: HEADER, cookie: 'ctok' } },
        imports: [ResolverModule, graphqlModule(driver)],
      });
    });
    afterEach(() => resumeReplay());
    afterAll(() => t.close());

    const post = (body: unknown, token?: string) => {
      const call = t.http().post('/graphql').set('content-type', 'application/json');
      if (token !== undefined) call.set(HEADER, token);
      return call.send(JSON.stringify(body));
    };

    it('a mutation sends the token (header and cookie) and a read with it sees the row', async () => {
      await pauseReplay();
      const tag = `${driver}-one`;
      const write = await post({ query: `mutation { write(tag: "${tag}") }` });
      expect(write.status).toBe(200);
      expect(write.body).toEqual({ data: { write: tag } });
      expect(await onPrimary(tag)).toBe(1);
      const token = write.headers[HEADER] as string | undefined;
      expect(token).toMatch(/^default=[0-9A-F]+\/[0-9A-F]+$/);
      expect(write.headers['set-cookie']).toEqual([expect.stringContaining(`ctok=${token}`)]);
      const read = await post({ query: `{ read(tag: "${tag}") { replica seen } }` }, token);
      expect(read.body).toEqual({ data: { read: { replica: false, seen: 1 } } });
      const stale = await post({ query: `{ read(tag: "${tag}") { replica seen } }` });
      expect(stale.body).toEqual({ data: { read: { replica: true, seen: 0 } } });
      await t.expectClean();
    });

    it('a batch of two mutations sends one token covering both', async () => {
      await pauseReplay();
      const response = await post([
        { query: `mutation { write(tag: "${driver}-b1") }` },
        { query: `mutation { write(tag: "${driver}-b2") }` },
      ]);
      expect(response.status).toBe(200);
      expect(response.body).toEqual([
        { data: { write: `${driver}-b1` } },
        { data: { write: `${driver}-b2` } },
      ]);
      expect([await onPrimary(`${driver}-b1`), await onPrimary(`${driver}-b2`)]).toEqual([1, 1]);
      const token = response.headers[HEADER] as string | undefined;
      expect(token).toMatch(/^default=/);
      const read = await post({ query: `{ read(tag: "${driver}-b2") { replica seen } }` }, token);
      expect(read.body).toEqual({ data: { read: { replica: false, seen: 1 } } });
      await t.expectClean();
    });

    it('a query that wrote nothing sends no token', async () => {
      const read = await post({ query: `{ read(tag: "none") { replica seen } }` });
      expect(read.body).toEqual({ data: { read: { replica: true, seen: 0 } } });
      expect(read.headers[HEADER]).toBeUndefined();
      expect(read.headers['set-cookie']).toBeUndefined();
      await t.expectClean();
    });
  },
);
