import { get, type IncomingMessage } from 'node:http';
import type { INestApplication, Provider, Type } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { eventually, type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import { checkedOut, type Engine, idleInTransaction } from '../support/engines.js';
import { HANG_MS, within } from './support-b.js';

export { HANG_MS, within };

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A listening app (Express or Fastify) on `engine`, with the suite's probes. */
export async function listen(
  engine: Engine,
  parts: {
    controllers?: Type[];
    providers?: Provider[];
    poolSize?: number;
    context?: TypeOrmContextModuleOptions;
    platform?: 'express' | 'fastify';
  },
): Promise<{ t: TestApp; port: number }> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine, parts.poolSize ?? 5)),
      TypeOrmContextModule.forRoot(parts.context ?? {}),
    ],
    controllers: parts.controllers ?? [],
    providers: parts.providers ?? [],
  }).compile();
  const logger = process.env.TEST_LOG ? ['error' as const, 'warn' as const] : false;
  const app: INestApplication =
    parts.platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger })
      : moduleRef.createNestApplication({ logger });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as { port: number }).port;
  const t = wrap(app, engine, app.get(DataSource));
  await t.dataSource.query('DELETE FROM example');
  return { t, port };
}

/** A response read as it arrives, the way an SSE client reads it. */
export class Reading {
  body = '';
  status = 0;
  /** 'ended' when the body came whole, 'failed' when the connection ended before that. */
  readonly end: Promise<'ended' | 'failed'>;
  private readonly request: ReturnType<typeof get>;
  private readonly onData = new Set<() => void>();

  constructor(port: number, path: string) {
    let resolveEnd!: (how: 'ended' | 'failed') => void;
    this.end = new Promise((resolve) => (resolveEnd = resolve));
    this.request = get({ host: '127.0.0.1', port, path }, (response: IncomingMessage) => {
      this.status = response.statusCode ?? 0;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        this.body += chunk;
        for (const listener of this.onData) listener();
      });
      response.on('error', () => undefined);
      response.on('close', () => resolveEnd(response.complete ? 'ended' : 'failed'));
    });
    this.request.on('error', () => resolveEnd('failed'));
  }

  /** The `data:` lines received so far. */
  get events(): string[] {
    return [...this.body.matchAll(/^data: (.*)$/gm)].map((match) => match[1]!);
  }

  /** Resolves once the body contains `fragment`; fails the test if it did not arrive in time. */
  async waitFor(fragment: string, what: string, ms = HANG_MS): Promise<void> {
    let listener!: () => void;
    const arrived = new Promise<void>((resolve) => {
      listener = () => {
        if (this.body.includes(fragment)) resolve();
      };
      this.onData.add(listener);
      listener();
    });
    try {
      await within(ms, what, arrived);
    } finally {
      this.onData.delete(listener);
    }
  }

  /** The client goes away. */
  close(): void {
    this.request.destroy();
  }
}

/** Resolves once no connection is checked out and none is idle in transaction. */
export async function expectReleased(engine: Engine, dataSource: DataSource): Promise<void> {
  await eventually(
    async () => checkedOut(dataSource) === 0 && (await idleInTransaction(engine, dataSource)) === 0,
    HANG_MS,
  );
}
