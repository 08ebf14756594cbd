import { Controller, Get, Headers, Injectable, type LoggerService } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** One line the app logged: its level, its message (first argument) and its context (last). */
export interface Line {
  level: 'log' | 'warn' | 'error';
  message: string;
  context: string;
}

/** A Nest logger (`createNestApplication({ logger })`) that keeps the module's lines. */
export class CapturingLogger implements LoggerService {
  readonly lines: Line[] = [];
  /** When set, `warn()` throws this (a logger that fails). */
  throwOnWarn?: Error;

  log(...parts: unknown[]): void {
    this.keep('log', parts);
  }

  warn(...parts: unknown[]): void {
    this.keep('warn', parts);
    if (this.throwOnWarn) throw this.throwOnWarn;
  }

  error(...parts: unknown[]): void {
    this.keep('error', parts);
  }

  /** The messages of this module's lines (context `TypeOrmContext`) matching `pattern`. */
  messages(pattern: RegExp): string[] {
    return this.lines
      .filter((line) => line.context === 'TypeOrmContext' && pattern.test(line.message))
      .map((line) => line.message);
  }

  private keep(level: Line['level'], parts: unknown[]): void {
    this.lines.push({ level, message: String(parts[0]), context: String(parts.at(-1)) });
  }
}

/** The engine the running apps use (the sleep statement differs). */
let current: Engine;

/** Makes one request wait until another has arrived (two requests that overlap for sure). */
class Meeting {
  private waiting?: () => void;

  /** Resolves when the second caller arrives. */
  meet(): Promise<void> {
    if (this.waiting) {
      this.waiting();
      this.waiting = undefined;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.waiting = resolve));
  }
}

@Injectable()
export class UsersService {
  constructor(
    readonly context: SessionContext,
    private readonly dataSource: DataSource,
  ) {}

  /** Plain TypeORM inside a unit: the module warns (once per call site). */
  async plain(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /** Writes, then registers an after-commit callback that fails: an error line per call. */
  async failingCallback(text: string): Promise<void> {
    await this.context.session().insert(Example, { text });
    this.context.afterCommit(() => {
      throw new Error(`callback of ${text} fails`);
    });
  }

  /** A transaction of its own that sleeps `seconds`, then fails if told to. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async slow(seconds: number, fail = false): Promise<number> {
    await this.context.session().insert(Example, { text: 'slow' });
    await this.context.session().query(current.sleepSql(seconds));
    if (fail) throw new Error('the slow block fails');
    return this.context.unitId();
  }

  /** A fast transaction of its own. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async fast(): Promise<number> {
    await this.context.session().insert(Example, { text: 'fast' });
    return this.context.unitId();
  }
}

@Controller()
export class UsersController {
  private readonly meeting = new Meeting();

  constructor(
    private readonly users: UsersService,
    private readonly factory: SessionFactory,
  ) {}

  @Get('plain')
  async plain(): Promise<{ unit: number }> {
    await this.users.plain();
    return { unit: this.users.context.unitId() };
  }

  @Get('callback')
  async callback(@Headers('x-request-id') id: string): Promise<{ unit: number }> {
    await this.meeting.meet();
    await this.users.failingCallback(id ?? 'none');
    return { unit: this.users.context.unitId() };
  }

  @Get('inner-context')
  async innerContext(): Promise<{ unit: number; inner: number; block: number }> {
    const inner = await this.factory.runInNewContext(async () => {
      await this.users.failingCallback('inner');
      return this.users.context.unitId();
    });
    const block = await this.users.fast();
    return { unit: this.users.context.unitId(), inner, block };
  }

  @Get('slow')
  async slow(): Promise<{ unit: number; block: number }> {
    // The unit's own session first: the unit lasts from here to its end, around the slow block.
    await this.users.context.session().query('SELECT 1');
    const block = await this.users.slow(1.2);
    return { unit: this.users.context.unitId(), block };
  }

  @Get('slow-fails')
  async slowFails(): Promise<{ unit: number }> {
    await this.users.slow(1.2, true).catch(() => undefined);
    return { unit: this.users.context.unitId() };
  }

  @Get('fast')
  async fast(): Promise<{ unit: number; block: number }> {
    const block = await this.users.fast();
    return { unit: this.users.context.unitId(), block };
  }
}

/** Starts an app of `UsersController` on `engine` logging to `logger`, with `context` options. */
export async function startLoggingApp(
  engine: Engine,
  logger: LoggerService,
  context: TypeOrmContextModuleOptions = {},
  configure?: (app: TestApp['app']) => void,
  fastify = false,
): Promise<TestApp> {
  current = engine;
  const moduleRef = await Test.createTestingModule({
    imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot(context)],
    controllers: [UsersController],
    providers: [UsersService],
  }).compile();
  const app = fastify
    ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger })
    : moduleRef.createNestApplication({ logger });
  configure?.(app);
  if (fastify) await app.listen(0, '127.0.0.1');
  else await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return wrap(app, engine, dataSource);
}
