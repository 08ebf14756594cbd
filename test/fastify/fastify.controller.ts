import {
  BadRequestException,
  Body,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  Injectable,
  Post,
  Req,
  StreamableFile,
  UseGuards,
} from '@nestjs/common';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { type Engine, backendId, checkedOut, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Set by the spec: the engine the app runs on. */
export const fastifyProbe: { engine?: Engine } = {};

/** What a guard saw through the session, handed to the handler on the request. */
interface GuardedRequest {
  guard?: { backend: string; txid: string | null };
}

/** An auth guard that writes through the session before the interceptor runs. */
@Injectable()
export class WritingGuard implements CanActivate {
  constructor(private readonly context: SessionContext) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<GuardedRequest>();
    const manager = this.context.session();
    await manager.insert(Example, { text: 'written_by_guard' });
    request.guard = {
      backend: await backendId(fastifyProbe.engine!, manager),
      txid: await txid(fastifyProbe.engine!, manager),
    };
    return true;
  }
}

@Controller()
export class FastifyController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  /** Touches nothing: reports how many connections the pool has out. */
  @Get('noop')
  noop() {
    return { checkedOut: checkedOut(this.context.session().connection) };
  }

  /** Inserts the body's text. */
  @Post('insert')
  async insert(@Body() body: { text: string }) {
    await this.context.session().insert(Example, { text: body.text });
    return { stored: body.text };
  }

  /** Inserts, then fails: the insert must be rolled back. */
  @Post('fail')
  async fail(@Body() body: { text: string }) {
    await this.context.session().insert(Example, { text: body.text });
    throw new BadRequestException('refused after writing');
  }

  /** Counts rows through the session. */
  @Get('count')
  async count() {
    return { rows: await this.context.session().count(Example) };
  }

  /** Writes through two independent sessions at once, then through the request's own. */
  @Post('parallel')
  async parallel(@Body() body: { text: string }) {
    await Promise.all(
      ['a', 'b'].map((suffix) =>
        this.factory.atomic((manager) => manager.insert(Example, { text: `${body.text}_${suffix}` })),
      ),
    );
    await this.context.session().insert(Example, { text: body.text });
    return 'ok';
  }

  /** The guard wrote first; the handler reports the guard's and its own connection and transaction. */
  @Post('guarded')
  @UseGuards(WritingGuard)
  async guarded(@Req() request: GuardedRequest) {
    const manager = this.context.session();
    await manager.insert(Example, { text: 'written_by_handler' });
    return {
      guard: request.guard,
      handler: {
        backend: await backendId(fastifyProbe.engine!, manager),
        txid: await txid(fastifyProbe.engine!, manager),
      },
    };
  }

  /** Streams every row's text from the request's session as a file, one per line. */
  @Get('export')
  async export() {
    const rows = await this.context
      .session()
      .createQueryBuilder(Example, 'e')
      .select('e.text')
      .orderBy('e.id')
      .stream();
    const toLine = new Transform({
      writableObjectMode: true,
      transform(row: { e_text: string }, _encoding, done) {
        done(null, `${row.e_text}\n`);
      },
    });
    pipeline(rows as Readable, toLine, () => undefined);
    return new StreamableFile(toLine, { type: 'text/plain' });
  }
}
