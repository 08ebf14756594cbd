import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  Get,
  Inject,
  Injectable,
  Param,
  UseFilters,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Propagation, SessionContext, Transactional } from '../../src/index.js';
import { type Engine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Injection token of the engine under test (its SQL reads the transaction id). */
export const ENGINE = Symbol('ENGINE');

/** How the outer context and the inner block end. */
export type Outcome = 'success' | 'inner-error' | 'outer-error';

/** What the database told the inner block while it ran. */
export interface InnerSeen {
  /** Transaction id after the inner insert (null: the insert ran without a transaction). */
  txid: string | null;
  /** Whether another connection saw the inner row before the block returned. */
  visibleElsewhere: boolean;
  /** Whether a session context was current inside the block. */
  active: boolean;
}

/** What one run of the outer scenario recorded (read by the spec after the run). */
export interface Seen {
  /** Transaction id of the outer context after its insert. */
  outer?: string | null;
  inner?: InnerSeen;
  /** Class name of the error the inner call threw, when the outer caught one. */
  innerError?: string;
  /** Transaction id of the outer context after the inner call returned or threw. */
  outerAfter?: string | null;
}

/** The inner block failed after its insert; carries what it saw. */
export class InnerFailure extends Error {
  constructor(readonly seen: InnerSeen) {
    super('inner failed');
    this.name = 'InnerFailure';
  }
}

/** The outer context failed after the inner block succeeded. */
export class OuterFailure extends Error {
  constructor() {
    super('outer failed');
    this.name = 'OuterFailure';
  }
}

/** One @Transactional method per propagation mode, each inserting a row and probing the database. */
@Injectable()
export class MatrixService {
  /** What the last scenario (or direct call) recorded. */
  seen: Seen = {};

  constructor(
    private readonly context: SessionContext,
    private readonly dataSource: DataSource,
    @Inject(ENGINE) private readonly engine: Engine,
  ) {}

  @Transactional({ propagation: Propagation.REQUIRED })
  required(text: string, fail = false) {
    return this.body(text, fail);
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  requiresNew(text: string, fail = false) {
    return this.body(text, fail);
  }

  @Transactional({ propagation: Propagation.NESTED })
  nested(text: string, fail = false) {
    return this.body(text, fail);
  }

  @Transactional({ propagation: Propagation.MANDATORY })
  mandatory(text: string, fail = false) {
    return this.body(text, fail);
  }

  @Transactional({ propagation: Propagation.NEVER })
  never(text: string, fail = false) {
    return this.body(text, fail);
  }

  @Transactional({ propagation: Propagation.SUPPORTS })
  supports(text: string, fail = false) {
    return this.body(text, fail);
  }

  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  notSupported(text: string, fail = false) {
    return this.body(text, fail);
  }

  /** Calls the method of `mode` directly (script or cron style when no context is current). */
  call(mode: Propagation, text: string, fail = false): Promise<InnerSeen> {
    switch (mode) {
      case Propagation.REQUIRED:
        return this.required(text, fail);
      case Propagation.REQUIRES_NEW:
        return this.requiresNew(text, fail);
      case Propagation.NESTED:
        return this.nested(text, fail);
      case Propagation.MANDATORY:
        return this.mandatory(text, fail);
      case Propagation.NEVER:
        return this.never(text, fail);
      case Propagation.SUPPORTS:
        return this.supports(text, fail);
      case Propagation.NOT_SUPPORTED:
        return this.notSupported(text, fail);
    }
  }

  /**
   * The outer context's work: insert 'outer', call the `mode` method (which inserts 'inner'),
   * catch its error only for 'inner-error', then throw for 'outer-error'.
   */
  async scenario(mode: Propagation, outcome: Outcome): Promise<void> {
    const seen: Seen = {};
    this.seen = seen;
    await this.context.session().insert(Example, { text: 'outer' });
    seen.outer = await txid(this.engine, this.context.session());
    try {
      seen.inner = await this.call(mode, 'inner', outcome === 'inner-error');
    } catch (error) {
      if (outcome !== 'inner-error') throw error;
      seen.innerError = (error as Error).name;
      if (error instanceof InnerFailure) seen.inner = error.seen;
    }
    seen.outerAfter = await txid(this.engine, this.context.session());
    if (outcome === 'outer-error') throw new OuterFailure();
  }

  private async body(text: string, fail: boolean): Promise<InnerSeen> {
    const manager = this.context.session();
    await manager.insert(Example, { text });
    const seen: InnerSeen = {
      txid: await txid(this.engine, manager),
      visibleElsewhere: (await this.countElsewhere(text)) > 0,
      active: this.context.isActive(),
    };
    this.seen.inner = seen;
    if (fail) throw new InnerFailure(seen);
    return seen;
  }

  /** Rows with `text` seen from a connection of its own, outside every session. */
  private async countElsewhere(text: string): Promise<number> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.connect();
      return await runner.manager.countBy(Example, { text });
    } finally {
      await runner.release();
    }
  }
}

/** Answers every error with 500 and its class name, so the spec can tell the errors apart. */
@Catch()
export class ErrorNameFilter implements ExceptionFilter {
  catch(error: unknown, host: ArgumentsHost): void {
    host
      .switchToHttp()
      .getResponse<{ status(code: number): { json(body: unknown): void } }>()
      .status(500)
      .json({ error: error instanceof Error ? error.name : String(error) });
  }
}

/** The same scenario as an HTTP request: the auto-commit interceptor is the outer context. */
@Controller('matrix')
@UseFilters(ErrorNameFilter)
export class MatrixController {
  constructor(private readonly service: MatrixService) {}

  @Get(':mode/:outcome')
  async run(@Param('mode') mode: Propagation, @Param('outcome') outcome: Outcome) {
    await this.service.scenario(mode, outcome);
    return 'committed';
  }
}
