import { Controller, Get, Injectable, Param, Post, Query } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** Resolvable gates a test opens to let a request go on. */
export const gates = new Map<string, () => void>();

/** A promise that resolves when the test calls `open(name)`. */
export function gate(name: string): Promise<void> {
  return new Promise((resolve) => gates.set(name, resolve));
}

/** Opens the gate `name` once a request waits at it. */
export async function open(name: string): Promise<void> {
  for (let i = 0; i < 500 && !gates.has(name); i++) await new Promise((r) => setTimeout(r, 5));
  const resolve = gates.get(name);
  if (resolve === undefined) throw new Error(`nobody waits at gate ${name}`);
  gates.delete(name);
  resolve();
}

@Injectable()
export class SqliteService {
  constructor(private readonly context: SessionContext) {}

  /** A savepoint that fails after its insert: the caller catches it and goes on. */
  @Transactional({ propagation: Propagation.NESTED })
  async nestedFailing(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
    throw new Error('nested failure');
  }

  /** Writes, then keeps its transaction past its timeout. */
  @Transactional({ timeout: 200 })
  async slow(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await this.context.session().insert(Example, { text: `${text}_late` });
  }

  /** Any isolation level is accepted: SQLite's transactions are all SERIALIZABLE. */
  @Transactional({ isolationLevel: 'READ COMMITTED' })
  async readCommitted(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ readOnly: true, propagation: Propagation.REQUIRES_NEW })
  async readOnlyWrite(): Promise<void> {
    await this.context.session().insert(Example, { text: 'read_only_write' });
  }

  @Transactional({ readOnly: true, propagation: Propagation.REQUIRES_NEW })
  async readOnlyCount(): Promise<number> {
    return this.context.session().count(Example);
  }
}

/** Every kind of unit the writer's queue must serve. */
@Controller()
export class SqliteController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly service: SqliteService,
    private readonly dataSource: DataSource,
  ) {}

  @Post('write/:text')
  async write(
    @Param('text') text: string,
    @Query('fail') fail?: string,
    @Query('gate') at?: string,
  ) {
    await this.context.session().insert(Example, { text });
    if (at) await gate(at);
    if (fail) throw new Error('handler failure');
    return { ok: true };
  }

  @Post('nested/:text')
  async nested(@Param('text') text: string) {
    await this.context.session().insert(Example, { text });
    await this.service.nestedFailing(`${text}_nested`).catch(() => undefined);
    return { ok: true };
  }

  @Post('factory/:text')
  async factoryAtomic(@Param('text') text: string) {
    await this.factory.atomic((manager) => manager.insert(Example, { text }));
    await this.factory.runInNewContext(() =>
      this.context.session().insert(Example, { text: `${text}_ctx` }),
    );
    return { ok: true };
  }

  /** The seed's independent sessions, all at once, while the request's own session stays unused. */
  @Post('parallel/:text')
  async parallel(@Param('text') text: string) {
    await Promise.all([
      this.factory.runInNewContext(() =>
        this.context.session().insert(Example, { text: `${text}_a` }),
      ),
      this.factory.atomic((manager) => manager.insert(Example, { text: `${text}_b` })),
      (async () => {
        await using session = this.factory.open();
        await session.manager.insert(Example, { text: `${text}_c` });
        await session.commit();
      })(),
    ]);
    return { ok: true };
  }

  /** Plain TypeORM code after the request's session took the one connection. */
  @Post('plain-inside/:text')
  async plainInside(@Param('text') text: string, @Query('fail') fail?: string) {
    await this.context.session().insert(Example, { text });
    await this.dataSource.manager.insert(Example, { text: `${text}_plain` });
    await this.dataSource.getRepository(Example).count();
    if (fail) throw new Error('handler failure');
    return { ok: true };
  }

  /** A factory session while the request's own transaction holds the one connection. */
  @Post('self-wait')
  async selfWait() {
    await this.context.session().insert(Example, { text: 'outer' });
    await this.factory.atomic((manager) => manager.insert(Example, { text: 'inner' }));
    return { ok: true };
  }

  @Post('slow/:text')
  slow(@Param('text') text: string) {
    return this.service.slow(text);
  }

  @Post('read-committed/:text')
  readCommitted(@Param('text') text: string) {
    return this.service.readCommitted(text);
  }

  @Post('read-only-write')
  readOnlyWrite() {
    return this.service.readOnlyWrite();
  }

  @Get('read-only-count')
  async readOnlyCount() {
    return { n: await this.service.readOnlyCount() };
  }
}
