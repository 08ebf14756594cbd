import { Controller, Get, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { SessionContext, Transactional } from '../../src/index.js';
import { type Engine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { sleep } from './barrier.js';

/** What the hooks scenario records, shared by the app and the spec. */
export const trace = {
  engine: undefined as Engine | undefined,
  /** Events in the order they happened. */
  log: [] as string[],
};

/** Inserts 'work' and returns the transaction id it ran in. */
export async function work(manager: EntityManager): Promise<string | null> {
  await manager.insert(Example, { text: 'work' });
  return txid(trace.engine!, manager);
}

/** Rows in `example` seen on another pooled connection (never the session's). */
export async function committedRows(dataSource: DataSource): Promise<number> {
  const rows: Array<{ n: number | string }> = await dataSource.query(
    'SELECT count(*) AS n FROM example',
  );
  return Number(rows[0]?.n);
}

/** The HTTP side of the hooks scenario. */
@Controller('hooks')
export class HooksController {
  constructor(
    private readonly context: SessionContext,
    private readonly dataSource: DataSource,
  ) {}

  @Get('work')
  async work() {
    return { txid: await work(this.context.session()) };
  }

  @Get('after-commit')
  async afterCommit() {
    await this.context.session().insert(Example, { text: 'http' });
    this.registerCallbacks();
    return 'ok';
  }

  @Get('after-commit-fails')
  async afterCommitFails() {
    await this.context.session().insert(Example, { text: 'http' });
    this.context.afterCommit(() => trace.log.push('dropped'));
    throw new Error('handler fails');
  }

  /** A slow callback that probes the database, then a quick one: they run one after the other. */
  registerCallbacks(): void {
    this.context.afterCommit(async () => {
      trace.log.push(`first sees ${await committedRows(this.dataSource)}`);
      await sleep(50);
      trace.log.push('first done');
    });
    this.context.afterCommit(() => trace.log.push('second'));
  }
}

/** `@Transactional()` outside any context. */
@Injectable()
export class HooksService {
  constructor(private readonly context: SessionContext) {}

  @Transactional()
  work() {
    return work(this.context.session());
  }

  @Transactional()
  async insert(text: string) {
    await this.context.session().insert(Example, { text });
  }
}
