/**
 * The app the fuzz programs run against (one per engine and pool size, reused across programs) and
 * the interpreter that runs a unit's steps in it. Every row a step writes records the transaction
 * and the connection the server saw it in.
 */
import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  Injectable,
  type INestApplication,
  Param,
  Post,
  UseFilters,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AsyncLocalStorage } from 'node:async_hooks';
import request from 'supertest';
import { DataSource, type EntityManager } from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import type { Engine } from '../support/engines.js';
import { type OpenOp, type Program, type Step, callbackTag, scopeKey, tagOf } from './model.js';

/** The user's own error, thrown by `throw` steps and the hooks. */
export class UserError extends Error {
  override name = 'UserError';
}

/** The client's view of a failed request: its status and the error's class name the server sent. */
export class HttpFailure extends Error {}

/** What the program run reports, and the errors seen, in the order they were seen. */
export class Recorder {
  program!: Program;
  outcomes = new Map<string, string>();
  callbacks = new Map<string, string>();
  errors: Array<{ where: string; error: unknown }> = [];

  /** Starts a new program. */
  reset(program: Program): void {
    this.program = program;
    this.outcomes = new Map();
    this.callbacks = new Map();
    this.errors = [];
  }

  /** Records the outcome of `work` under `key` and returns it; never rejects. */
  async settle(key: string, work: () => Promise<unknown>): Promise<boolean> {
    try {
      await work();
      this.outcomes.set(key, 'ok');
      return true;
    } catch (error) {
      this.fail(key, error);
      return false;
    }
  }

  /** Records a failure of `key`. */
  fail(key: string, error: unknown): void {
    this.outcomes.set(key, error instanceof Error ? error.name : String(error));
    this.errors.push({ where: key, error });
  }
}

/** Per unit: whether its first BEGIN must fail (read by `onSessionStart`, one-shot). */
export const unitStore = new AsyncLocalStorage<{ failBegin: boolean }>();

/** The table's DDL for an engine. */
export function tableSql(engine: Engine): string[] {
  return engine.name === 'postgres'
    ? [
        'DROP TABLE IF EXISTS fuzz_row',
        'DROP TABLE IF EXISTS fuzz_never',
        'CREATE TABLE fuzz_never (id int PRIMARY KEY)',
        `CREATE TABLE fuzz_row (tag varchar(80) PRIMARY KEY, txid text, backend text, in_tx int,
           hook_fail boolean NOT NULL DEFAULT false,
           commit_fail int REFERENCES fuzz_never (id) DEFERRABLE INITIALLY DEFERRED)`,
      ]
    : [
        'DROP TABLE IF EXISTS fuzz_row',
        `CREATE TABLE fuzz_row (tag varchar(80) PRIMARY KEY, txid varchar(40), backend varchar(40),
           in_tx int, hook_fail tinyint NOT NULL DEFAULT 0) ENGINE=InnoDB`,
      ];
}

/** A row of the table as read back. */
export interface Row {
  tag: string;
  txid: string | null;
  backend: string;
  in_tx: number | null;
}

/** Writes one row on `manager`, recording the transaction and connection the server saw. */
function insert(
  engine: Engine,
  manager: EntityManager,
  tag: string,
  arm?: 'beforeCommit' | 'deferred',
) {
  const hook = arm === 'beforeCommit';
  if (engine.name === 'postgres') {
    return manager.query(
      `INSERT INTO fuzz_row (tag, txid, backend, in_tx, hook_fail, commit_fail)
       VALUES ($1, txid_current()::text, pg_backend_pid()::text, NULL, $2, $3)`,
      [tag, hook, arm === 'deferred' ? 1 : null],
    );
  }
  return manager.query(
    'INSERT INTO fuzz_row (tag, txid, backend, in_tx, hook_fail) VALUES (?, NULL, CONNECTION_ID(), @@in_transaction, ?)',
    [tag, hook ? 1 : 0],
  );
}

/** Runs `fn` in a block of each propagation; the decorator variants of `sessionContext.atomic()`. */
@Injectable()
export class Blocks {
  @Transactional({ propagation: Propagation.REQUIRED })
  required(fn: () => Promise<void>) {
    return fn();
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  requiresNew(fn: () => Promise<void>) {
    return fn();
  }

  @Transactional({ propagation: Propagation.NESTED })
  nested(fn: () => Promise<void>) {
    return fn();
  }
}

/** The interpreter of a program's units. */
@Injectable()
export class Interpreter {
  engine!: Engine;
  readonly recorder = new Recorder();

  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly blocks: Blocks,
  ) {}

  /** Runs a body's steps on the current session; a throwing step rejects. */
  async body(unit: number, path: number[], steps: Step[]): Promise<void> {
    for (const [i, step] of steps.entries()) await this.step(unit, [...path, i], step);
  }

  private session = () => this.context.session();

  private async step(unit: number, here: number[], step: Step): Promise<void> {
    const key = scopeKey(unit, here);
    const run =
      (body: Step[], at = here) =>
      () =>
        this.body(unit, at, body);
    switch (step.t) {
      case 'insert':
        return void (await insert(this.engine, this.session(), tagOf(unit, here)));
      case 'parallel':
        await Promise.all(
          Array.from({ length: step.n }, (_, k) =>
            insert(this.engine, this.session(), tagOf(unit, here, k)),
          ),
        );
        return;
      case 'nested':
        await this.recorder.settle(key, () =>
          step.via === 'atomic'
            ? this.context.atomic(run(step.body), { propagation: Propagation.NESTED })
            : this.blocks.nested(run(step.body)),
        );
        return;
      case 'nestedAll':
        await Promise.all(
          step.blocks.map((block, b) =>
            this.recorder.settle(scopeKey(unit, [...here, b]), () =>
              this.context.atomic(run(block, [...here, b]), { propagation: Propagation.NESTED }),
            ),
          ),
        );
        return;
      case 'requiresNew':
        await this.recorder.settle(key, () =>
          step.via === 'atomic'
            ? this.context.atomic(run(step.body), { propagation: Propagation.REQUIRES_NEW })
            : this.blocks.requiresNew(run(step.body)),
        );
        return;
      case 'required':
        await this.recorder.settle(key, () => this.blocks.required(run(step.body)));
        return;
      case 'afterCommit': {
        await insert(this.engine, this.session(), tagOf(unit, here));
        const tag = callbackTag(unit, here);
        this.context.afterCommit(async () => {
          this.recorder.callbacks.set(tag, 'running');
          try {
            await this.factory.atomic((manager) => insert(this.engine, manager, tag));
            this.recorder.callbacks.set(tag, 'ok');
          } catch (error) {
            this.recorder.callbacks.set(tag, error instanceof Error ? error.name : String(error));
            this.recorder.errors.push({ where: tag, error });
          }
          if (step.throws) throw new UserError(`callback ${tag}`);
        });
        return;
      }
      case 'commit':
        try {
          await this.context.commit();
          this.recorder.outcomes.set(key, 'ok');
        } catch (error) {
          this.recorder.fail(key, error);
          throw error;
        }
        return;
      case 'arm':
        return void (await insert(this.engine, this.session(), tagOf(unit, here), step.hook));
      case 'throw':
        throw new UserError(`thrown at ${tagOf(unit, here)}`);
      case 'bad':
        await this.session().query('SELECT * FROM fuzz_missing_table');
        throw new Error('unreachable: the bad statement succeeded');
    }
  }

  /** Runs unit `u` of the current program (not an HTTP one) and records its outcome. */
  runUnit(u: number, http: () => Promise<void>): Promise<boolean> {
    const unit = this.recorder.program.units[u]!;
    const key = scopeKey(u, []);
    if (unit.kind === 'open') return this.recorder.settle(key, () => this.open(u, unit.ops));
    const store = { failBegin: unit.failBegin };
    const body = () => unitStore.run(store, () => this.body(u, [], unit.body));
    switch (unit.kind) {
      case 'http':
        return this.recorder.settle(key, http);
      case 'newContext':
        return this.recorder.settle(key, () => this.factory.runInNewContext(body));
      case 'factoryAtomic':
        return this.recorder.settle(key, () => this.factory.atomic(body));
      case 'transactional': {
        const method = {
          REQUIRED: 'required',
          REQUIRES_NEW: 'requiresNew',
          NESTED: 'nested',
        } as const;
        return this.recorder.settle(key, () => this.blocks[method[unit.propagation]](body));
      }
    }
  }

  /** The body of an HTTP unit, run by the controller inside the request's context. */
  httpBody(u: number): Promise<void> {
    const unit = this.recorder.program.units[u]!;
    if (unit.kind === 'open') throw new Error('not an http unit');
    return unitStore.run({ failBegin: unit.failBegin }, () => this.body(u, [], unit.body));
  }

  /** A `sessionFactory.open()` unit: its ops, then `close()`. */
  private async open(u: number, ops: OpenOp[]): Promise<void> {
    await using session = this.factory.open();
    for (const [i, op] of ops.entries()) {
      const here = [i];
      if (op === 'insert') await insert(this.engine, session.manager, tagOf(u, here));
      if (op === 'parallel')
        await Promise.all(
          [0, 1].map((k) => insert(this.engine, session.manager, tagOf(u, here, k))),
        );
      if (op === 'commit') {
        const key = scopeKey(u, here);
        try {
          await session.commit();
          this.recorder.outcomes.set(key, 'ok');
        } catch (error) {
          this.recorder.fail(key, error);
          throw error;
        }
      }
      if (op === 'rollback') await session.rollback();
      if (op === 'throw') throw new UserError(`thrown at ${tagOf(u, here)}`);
    }
  }
}

/** Answers every error with 500 and its class name, and records it for the error-class check. */
@Catch()
class RecordingFilter implements ExceptionFilter {
  constructor(private readonly interpreter: Interpreter) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const unit = Number(http.getRequest<{ params: { unit: string } }>().params.unit);
    this.interpreter.recorder.errors.push({ where: scopeKey(unit, []), error });
    http
      .getResponse<{ status(code: number): { json(body: unknown): void } }>()
      .status(500)
      .json({ error: error instanceof Error ? error.name : String(error) });
  }
}

@Controller('fuzz')
@UseFilters(RecordingFilter)
class FuzzController {
  constructor(private readonly interpreter: Interpreter) {}

  @Post(':unit')
  async run(@Param('unit') unit: string) {
    await this.interpreter.httpBody(Number(unit));
    return { ok: true };
  }
}

/** A started fuzz app. */
export interface FuzzApp {
  app: INestApplication;
  dataSource: DataSource;
  interpreter: Interpreter;
  /** Sends unit `u` as a request; rejects with the error's class name unless it answered 2xx. */
  post(u: number): Promise<void>;
}

/** Builds the fuzz app for an engine and a pool size. */
export async function createFuzzApp(engine: Engine, pool: number): Promise<FuzzApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({ ...engine.options, entities: [], poolSize: pool, logging: false }),
      TypeOrmContextModule.forRoot({
        acquireTimeout: 800,
        onSessionStart: () => {
          const store = unitStore.getStore();
          if (store?.failBegin) {
            store.failBegin = false;
            throw new UserError('onSessionStart failed');
          }
        },
        beforeCommit: async (session) => {
          const armed: unknown[] = await session.query(
            engine.name === 'postgres'
              ? 'SELECT tag FROM fuzz_row WHERE hook_fail'
              : 'SELECT tag FROM fuzz_row WHERE hook_fail = 1',
          );
          if (armed.length > 0) throw new UserError('beforeCommit failed');
        },
      }),
    ],
    controllers: [FuzzController],
    providers: [Blocks, Interpreter, RecordingFilter],
  }).compile();
  const app = moduleRef.createNestApplication({
    logger: process.env.TEST_LOG ? ['error', 'warn'] : false,
  });
  await app.init();
  const interpreter = app.get(Interpreter);
  interpreter.engine = engine;
  const dataSource = app.get(DataSource);
  const post = async (u: number) => {
    const response = await request(app.getHttpServer()).post(`/fuzz/${u}`);
    if (response.status >= 300) {
      const error = new HttpFailure(`HTTP ${response.status}`);
      error.name = (response.body as { error?: string }).error ?? `HTTP ${response.status}`;
      throw error;
    }
  };
  return { app, dataSource, interpreter, post };
}
