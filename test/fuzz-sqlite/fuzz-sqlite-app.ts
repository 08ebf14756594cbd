/**
 * The SQLite fuzz's app: one endpoint that runs a request operation of the model, a service with
 * the @Transactional blocks, and a filter that answers every error with its message.
 */
import {
  type ArgumentsHost,
  Body,
  Catch,
  Controller,
  type ExceptionFilter,
  Injectable,
  Post,
} from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { Propagation, SessionContext, SessionFactory, Transactional } from '../../src/index.js';
import { Example } from '../support/example.entity.js';
import {
  type Independent,
  type Op,
  type Pause,
  READ_ONLY_REFUSED,
  type SelfWait,
  failure,
  isReadOnlyRefusal,
  texts,
} from './model.js';

/** Every error message the app saw (filter, caught blocks): the spec checks none is a driver's. */
export const seenErrors: string[] = [];

/** The message of `error`, with its cause's. */
export function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause === undefined ? '' : ` (cause: ${messageOf(error.cause)})`;
  return `${error.message}${cause}`;
}

/** Waits as `pause` says (nothing for 'none'). */
export async function pause(how: Pause): Promise<void> {
  if (how === 'none') return;
  if (how === 'immediate') await new Promise((resolve) => setImmediate(resolve));
  else await new Promise((resolve) => setTimeout(resolve, how));
}

/** Answers every error with 500 and its message, and records the message. */
@Catch()
export class RecordingFilter implements ExceptionFilter {
  /** Records the error and answers `{ message }`. */
  catch(exception: unknown, host: ArgumentsHost): void {
    const message = messageOf(exception);
    seenErrors.push(message);
    host
      .switchToHttp()
      .getResponse<{ status(code: number): { json(body: unknown): void } }>()
      .status(500)
      .json({ message });
  }
}

/** The blocks a request or the test opens. */
@Injectable()
export class FuzzSqliteService {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  /** Writes `names` through the current session, then throws `fail` if given. */
  async write(names: string[], fail?: string, between: Pause = 'none'): Promise<void> {
    for (const [i, text] of names.entries()) {
      if (i > 0) await pause(between);
      await this.context.session().insert(Example, { text });
    }
    if (fail !== undefined) throw new Error(fail);
  }

  /** A savepoint of the caller's transaction. */
  @Transactional({ propagation: Propagation.NESTED })
  nested(names: string[], fail?: string, between: Pause = 'none'): Promise<void> {
    return this.write(names, fail, between);
  }

  /** A transaction of its own. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  requiresNew(names: string[], fail?: string): Promise<void> {
    return this.write(names, fail);
  }

  /** A read-only transaction of its own that counts the rows, or tries to write `text`. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW, readOnly: true })
  async readOnly(text?: string): Promise<number> {
    if (text !== undefined) await this.context.session().insert(Example, { text });
    return this.context.session().count(Example);
  }

  /** Writes `names` in an independent session opened `via`, then throws `fail` if given. */
  independent(via: Independent, names: string[], fail?: string): Promise<void> {
    switch (via) {
      case 'requiresNew':
        return this.requiresNew(names, fail);
      case 'atomic':
        return this.factory.atomic(async (manager: EntityManager) => {
          for (const text of names) await manager.insert(Example, { text });
          if (fail !== undefined) throw new Error(fail);
        });
      case 'runInNewContext':
        return this.factory.runInNewContext(() => this.write(names, fail));
      case 'open':
        return this.openSession(names, fail);
    }
  }

  /** `sessionFactory.open()`: writes, then commits, or throws (closing it rolls back). */
  private async openSession(names: string[], fail?: string): Promise<void> {
    await using session = this.factory.open();
    for (const text of names) await session.manager.insert(Example, { text });
    if (fail !== undefined) throw new Error(fail);
    await session.commit();
  }
}

/** What a request answers: `inner` is what its caught block reported. */
export interface OpResponse {
  inner?: string;
  count?: number;
}

/** Runs a caught block and reports `'ok'` or its error's message (recorded). */
async function report(block: () => Promise<unknown>): Promise<string> {
  try {
    await block();
    return 'ok';
  } catch (error) {
    const message = messageOf(error);
    seenErrors.push(message);
    return message;
  }
}

/** The one endpoint: runs the request operation in the body under the tag in the body. */
@Controller()
export class FuzzSqliteController {
  constructor(
    private readonly context: SessionContext,
    private readonly service: FuzzSqliteService,
    private readonly dataSource: DataSource,
  ) {}

  /** Runs `op` (a request kind) for `tag`. */
  @Post('op')
  async run(@Body() body: { tag: string; op: Op }): Promise<OpResponse> {
    const { tag, op } = body;
    const fail = (yes: boolean) => (yes ? failure(tag) : undefined);
    switch (op.kind) {
      case 'request':
        if (op.together) {
          const names = texts(tag, 'w', op.writes);
          await Promise.all(names.map((name) => this.service.write([name], undefined, op.pause)));
          await this.service.write([], fail(op.fail));
        } else await this.service.write(texts(tag, 'w', op.writes), fail(op.fail), op.pause);
        return {};
      case 'nested': {
        await this.service.write(texts(tag, 'w', 1));
        const inner = await report(() =>
          this.service.nested(
            texts(tag, 'n', op.nested),
            op.nestedFail ? failure(`${tag}_nested`) : undefined,
          ),
        );
        await this.service.write([], fail(op.fail));
        return { inner };
      }
      case 'newFirst': {
        const inner = await report(() =>
          this.service.independent(
            op.via,
            texts(tag, 'b', op.block),
            op.blockFail ? failure(`${tag}_block`) : undefined,
          ),
        );
        await this.service.write(texts(tag, 'w', op.writes), fail(op.fail));
        return { inner };
      }
      case 'nestedAll': {
        await this.service.write(texts(tag, 'w', 1));
        const blocks = op.blocks.map((block, k) =>
          report(() =>
            this.service.nested(
              texts(tag, `n${k}_`, block.writes),
              block.fail ? failure(`${tag}_n${k}`) : undefined,
              block.pause,
            ),
          ),
        );
        const outer = op.outerWrite ? this.service.write(texts(tag, 'x', 1)) : undefined;
        const [inner] = await Promise.all([Promise.all(blocks), outer]);
        await this.service.write([], fail(op.fail));
        return { inner: inner.join(',') };
      }
      case 'plainInside': {
        await this.service.write(texts(tag, 'w', 1));
        for (const text of texts(tag, 'p', op.writes))
          await this.dataSource.manager.insert(Example, { text });
        const inner = op.transaction
          ? await report(() =>
              this.dataSource.transaction(async (manager) => {
                await manager.insert(Example, { text: texts(tag, 't', 1)[0] });
                if (op.txFail) throw new Error(failure(`${tag}_tx`));
              }),
            )
          : undefined;
        await this.service.write([], fail(op.fail));
        return { inner };
      }
      case 'commitMid':
        await this.service.write(texts(tag, 'c', op.before), undefined, op.pause);
        await this.context.commit();
        await pause(op.pause);
        if (op.then !== undefined) await this.service.independent(op.then, texts(tag, 'b', 1));
        await this.service.write(texts(tag, 'a', op.after), fail(op.fail), op.pause);
        return {};
      case 'readOnly': {
        if (!op.write) return { count: await this.service.readOnly() };
        const refusal = await report(() => this.service.readOnly(texts(tag, 'r', 1)[0]));
        return { inner: isReadOnlyRefusal(refusal) ? READ_ONLY_REFUSED : refusal };
      }
      default:
        throw new Error(`not a request operation: ${JSON.stringify(op)}`);
    }
  }

  /**
   * The documented self-wait: the request's transaction holds the one connection and awaits an
   * independent session, which can only time out. Reports what it caught, then ok or throws.
   */
  @Post('self-wait')
  async selfWait(@Body() body: { tag: string; op: SelfWait }): Promise<OpResponse> {
    const { tag, op } = body;
    await this.service.write(texts(tag, 'w', 1));
    let inner = 'ok';
    try {
      await this.service.independent(op.via, texts(tag, 'i', 1));
    } catch (error) {
      seenErrors.push(messageOf(error));
      inner = (error as Error).constructor.name;
    }
    await this.service.write([], op.fail ? failure(tag) : undefined);
    return { inner };
  }
}
