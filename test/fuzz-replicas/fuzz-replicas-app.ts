/**
 * The replica fuzz's app: routes for the HTTP writes and reads of the model, a service with the
 * @Transactional blocks, and a filter that answers every error with its message.
 */
import {
  type ArgumentsHost,
  Body,
  Catch,
  Controller,
  type ExceptionFilter,
  Get,
  Injectable,
  Post,
  Query,
  UseFilters,
} from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { type Nested, failure, texts } from './model.js';

/** What a read saw: where it ran (at its first statement) and the client's rows (at its second). */
export interface Sight {
  replica: boolean;
  port: number;
  /** `pg_last_wal_replay_lsn()` at the read's first statement (null on the primary). */
  replayed: string | null;
  texts: string[];
}

/** The message of `error`, with its cause's. */
export function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause === undefined ? '' : ` (cause: ${messageOf(error.cause)})`;
  return `${error.message}${cause}`;
}

/** Where `manager`'s transaction runs, then the texts of the rows starting with `prefix`. */
export async function sight(manager: EntityManager, prefix: string): Promise<Sight> {
  const [at]: Array<{ replica: boolean; port: number; replayed: string | null }> =
    await manager.query(
      'SELECT pg_is_in_recovery() AS replica, inet_server_port() AS port, pg_last_wal_replay_lsn()::text AS replayed',
    );
  const rows: Array<{ text: string }> = await manager.query(
    'SELECT text FROM replica_item WHERE text LIKE $1 ORDER BY text',
    [`${prefix}%`],
  );
  return { ...at!, texts: rows.map((row) => row.text) };
}

/** A route's planned failure, with what the route's read saw before it (if it read). */
export class PlannedFailure extends Error {
  constructor(
    message: string,
    readonly read?: Sight,
  ) {
    super(message);
  }
}

/** Answers every error with 500 and its message (and a planned failure's read). */
@Catch()
export class MessageFilter implements ExceptionFilter {
  /** Answers `{ message, read? }`. */
  catch(exception: unknown, host: ArgumentsHost): void {
    const read = exception instanceof PlannedFailure ? exception.read : undefined;
    host
      .switchToHttp()
      .getResponse<{ status(code: number): { json(body: unknown): void } }>()
      .status(500)
      .json({ message: messageOf(exception), read });
  }
}

/** The blocks the routes and the spec open. */
@Injectable()
export class FuzzReplicaService {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  /** Writes `names` through the current session, then throws `fail` if given. */
  async write(names: string[], fail?: string): Promise<void> {
    for (const text of names) await this.context.session().insert(ReplicaItem, { text });
    if (fail !== undefined) throw new Error(fail);
  }

  /** A savepoint of the caller's transaction. */
  @Transactional({ propagation: Propagation.NESTED })
  nested(names: string[], fail?: string): Promise<void> {
    return this.write(names, fail);
  }

  /** Writes `rows` rows of `tag`, then a caught NESTED block; reports what the block reported. */
  async writeWithNested(tag: string, rows: number, nested?: Nested): Promise<string | undefined> {
    await this.write(texts(tag, 'w', rows));
    if (nested === undefined) return undefined;
    try {
      await this.nested(
        texts(tag, 'n', nested.rows),
        nested.fail ? failure(`${tag}_nested`) : undefined,
      );
      return 'ok';
    } catch (error) {
      return messageOf(error);
    }
  }

  /** A read-only transaction of its own (a replica, if the unit's token allows). */
  @Transactional({ readOnly: true, propagation: Propagation.REQUIRES_NEW })
  report(prefix: string): Promise<Sight> {
    return sight(this.context.session(), prefix);
  }

  /** A read-only `sessionFactory.open()`, committed and closed. */
  async openRead(prefix: string): Promise<Sight> {
    await using session = this.factory.open({ readOnly: true });
    const seen = await sight(session.manager, prefix);
    await session.commit();
    return seen;
  }

  /** A read-only `sessionFactory.atomic()`. */
  atomicRead(prefix: string): Promise<Sight> {
    return this.factory.atomic((manager) => sight(manager, prefix), { readOnly: true });
  }
}

/** A write route's answer: what its caught block reported, what its read after the commit saw. */
export interface WriteAnswer {
  inner?: string;
  read?: Sight;
}

/** The model's HTTP routes; every tag and prefix comes in the body or the query. */
@Controller('fzr')
@UseFilters(MessageFilter)
export class FuzzReplicaController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly service: FuzzReplicaService,
  ) {}

  /**
   * Writes in the request's unit (maybe a NESTED block), then ok or failing; with no rows, reads
   * the client's rows in the request's own transaction instead.
   */
  @Post('request')
  async request(
    @Body() body: { tag: string; client: string; rows: number; nested?: Nested; fail: boolean },
  ): Promise<WriteAnswer> {
    if (body.rows === 0) {
      const read = await sight(this.context.session(), body.client);
      if (body.fail) throw new PlannedFailure(failure(body.tag), read);
      return { read };
    }
    const inner = await this.service.writeWithNested(body.tag, body.rows, body.nested);
    if (body.fail) throw new Error(failure(body.tag));
    return { inner };
  }

  /** Writes, commits, maybe reads (read-only atomic), writes more, then ok or failing. */
  @Post('commit-mid')
  async commitMid(
    @Body()
    body: {
      tag: string;
      client: string;
      before: number;
      after: number;
      readAfter: boolean;
      fail: boolean;
    },
  ): Promise<WriteAnswer> {
    await this.service.write(texts(body.tag, 'c', body.before));
    await this.context.commit();
    const read = body.readAfter ? await this.service.atomicRead(body.client) : undefined;
    await this.service.write(texts(body.tag, 'a', body.after));
    if (body.fail) throw new PlannedFailure(failure(body.tag), read);
    return { read };
  }

  /** Own rows, then a caught runInNewContext() that writes (ok or failing), then ok or failing. */
  @Post('child')
  async child(
    @Body() body: { tag: string; own: number; child: number; childFail: boolean; fail: boolean },
  ): Promise<WriteAnswer> {
    await this.service.write(texts(body.tag, 'w', body.own));
    let inner = 'ok';
    try {
      await this.factory.runInNewContext(() =>
        this.service.write(
          texts(body.tag, 'k', body.child),
          body.childFail ? failure(`${body.tag}_child`) : undefined,
        ),
      );
    } catch (error) {
      inner = messageOf(error);
    }
    if (body.fail) throw new Error(failure(body.tag));
    return { inner };
  }

  /** A read of the rows starting with `prefix`, begun as `via` says. */
  @Get('read')
  read(@Query('prefix') prefix: string, @Query('via') via: string): Promise<Sight> {
    switch (via) {
      case 'httpAtomic':
        return this.service.atomicRead(prefix);
      case 'httpReport':
        return this.service.report(prefix);
      case 'httpChild':
        return this.factory.runInNewContext(() => this.service.atomicRead(prefix));
      default:
        throw new Error(`not an HTTP read: ${via}`);
    }
  }
}
