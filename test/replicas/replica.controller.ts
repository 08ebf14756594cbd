import { Controller, Get, Injectable, Param, Post } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { ReplicaItem, type Where, where } from './replica-item.js';

/** Where a block ran, and how many rows with a text it saw there. */
export interface Seen extends Where {
  seen: number;
}

async function seen(manager: EntityManager, text: string): Promise<Seen> {
  return { ...(await where(manager)), seen: await manager.countBy(ReplicaItem, { text }) };
}

/** Transactional methods: read-only ones of each propagation, and writes around them. */
@Injectable()
export class ReplicaService {
  constructor(private readonly context: SessionContext) {}

  /** Its own read-only transaction, also inside a request. */
  @Transactional({ readOnly: true, propagation: Propagation.REQUIRES_NEW })
  report(text: string): Promise<Seen> {
    return seen(this.context.session(), text);
  }

  /** REQUIRED: inside a request it joins the request's transaction. */
  @Transactional({ readOnly: true })
  joined(): Promise<Where> {
    return where(this.context.session());
  }

  /** A read-only transaction of its own that tries to write through the repository API. */
  @Transactional({ readOnly: true, propagation: Propagation.REQUIRES_NEW })
  async badWrite(): Promise<void> {
    await this.context.session().getRepository(ReplicaItem).save({ text: 'never' });
  }

  /** A read-write transaction that writes, then runs a REQUIRES_NEW read-only block. */
  @Transactional()
  async writeThenReport(text: string): Promise<{ write: Where; report: Seen }> {
    await this.context.session().insert(ReplicaItem, { text });
    return { write: await where(this.context.session()), report: await this.report(text) };
  }
}

/** Routes of the replica suite. */
@Controller()
export class ReplicaController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly service: ReplicaService,
  ) {}

  /** A read-only sessionFactory.atomic() in a request that did nothing else. */
  @Get('read/:text')
  read(@Param('text') text: string): Promise<Seen> {
    return this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
  }

  /** The same, opted out of the replica. */
  @Get('read-primary/:text')
  readPrimary(@Param('text') text: string): Promise<Seen> {
    return this.factory.atomic((manager) => seen(manager, text), {
      readOnly: true,
      replica: false,
    });
  }

  /** A read-only @Transactional(REQUIRES_NEW) method. */
  @Get('report/:text')
  report(@Param('text') text: string): Promise<Seen> {
    return this.service.report(text);
  }

  /**
   * Writes through the request's session and commits it, then reads in a read-only transaction
   * (which must stay on the primary and see the row), then in a REQUIRED read-only block.
   */
  @Post('write/:text')
  async write(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    const write = await where(this.context.session());
    await this.context.commit();
    const read = await this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
    const report = await this.service.report(text);
    return { write, read, report, joined: await this.service.joined() };
  }

  /** A REQUIRES_NEW read-only block inside a read-write transaction that wrote. */
  @Post('write-then-report/:text')
  writeThenReport(@Param('text') text: string) {
    return this.service.writeThenReport(text);
  }

  /** A read-only transaction first (on a replica), then a write in the request's own transaction. */
  @Post('read-then-write/:text')
  async readThenWrite(@Param('text') text: string) {
    const read = await this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
    await this.context.session().insert(ReplicaItem, { text });
    return { read, write: await where(this.context.session()) };
  }

  /** The read-only method that writes. */
  @Post('bad-write')
  badWrite(): Promise<void> {
    return this.service.badWrite();
  }
}
