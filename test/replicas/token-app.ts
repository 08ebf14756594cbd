import { Controller, Get, Param, Post } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { ReplicaItem, type Where, where } from './replica-item.js';

/** Where a read ran and how many rows with a text it saw. */
export interface Seen extends Where {
  seen: number;
}

async function seen(manager: EntityManager, text: string): Promise<Seen> {
  return { ...(await where(manager)), seen: await manager.countBy(ReplicaItem, { text }) };
}

/** The consistency token suite's routes: writes that commit, and read-only transactions. */
@Controller('tok')
export class TokenController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  /** Writes in the request's own transaction (committed before the response). */
  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  /** A read-only transaction of its own (a replica, unless the request's token forbids it). */
  @Get('read/:text')
  read(@Param('text') text: string): Promise<Seen> {
    return this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
  }

  /** Reads on the primary in a read-write transaction, writing nothing. */
  @Post('read-write/:text')
  async readWrite(@Param('text') text: string): Promise<Seen> {
    return seen(this.context.session(), text);
  }

  /** Writes in a `runInNewContext()` of the request, nothing in the request's own session. */
  @Post('child/:text')
  async child(@Param('text') text: string): Promise<object> {
    await this.factory.runInNewContext(() => this.context.session().insert(ReplicaItem, { text }));
    return {};
  }

  /** Writes, commits midway, then fails. */
  @Post('commit-then-fail/:text')
  async commitThenFail(@Param('text') text: string): Promise<never> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    throw new Error('failed after its commit');
  }

  /** The request's token as the handler sees it after its own commit. */
  @Post('token/:text')
  async token(@Param('text') text: string): Promise<object> {
    const before = this.context.consistencyToken() ?? null;
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    return { before, after: this.context.consistencyToken() ?? null };
  }
}
