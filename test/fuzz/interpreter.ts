/**
 * The interpreter of fuzz programs: runs a unit's steps on the library's API and records what
 * each unit, block, commit and callback reported. Every row a step writes records the transaction
 * and the connection the server saw it in.
 */
import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { DataSource, EntityManager } from 'typeorm';
import {
  Propagation,
  type Session,
  SessionContext,
  SessionFactory,
  Transactional,
} from '../../src/index.js';
import { type Engine, backendId } from '../support/engines.js';
import {
  type OpenOp,
  type Program,
  type Step,
  callbackTag,
  lateTag,
  scopeKey,
  tagOf,
} from './model.js';

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
  /** Per `late` step's tag: what its write after the unit's end reported. */
  late = new Map<string, string>();
  /** The `late` steps' work, awaited before the database is checked. */
  pending: Array<Promise<void>> = [];
  /** Per `afterTest` step's tag: what its write after the test transaction's rollback reported. */
  afterTest = new Map<string, string>();
  /** The `afterTest` steps' work, awaited after the rollback. */
  afterTestWork: Array<Promise<void>> = [];
  private testEnds: () => void = () => undefined;
  private testEnded = new Promise<void>((resolve) => (this.testEnds = resolve));
  private ends = new Map<number, () => void>();
  private ended = new Map<number, Promise<void>>();

  /** Starts a new program. */
  reset(program: Program): void {
    this.program = program;
    this.outcomes = new Map();
    this.callbacks = new Map();
    this.errors = [];
    this.late = new Map();
    this.pending = [];
    this.afterTest = new Map();
    this.afterTestWork = [];
    this.testEnded = new Promise<void>((resolve) => (this.testEnds = resolve));
    this.ends = new Map();
    this.ended = new Map(
      program.units.map((_, u) => [u, new Promise<void>((resolve) => this.ends.set(u, resolve))]),
    );
  }

  /** The program's test transaction rolled back (or the program ended without one). */
  endTest(): void {
    this.testEnds();
  }

  /** Resolves once the program's test transaction rolled back. */
  get afterTestStarts(): Promise<void> {
    return this.testEnded;
  }

  /** Resolves once unit `u` reported its outcome. */
  endOf(u: number): Promise<void> {
    return this.ended.get(u)!;
  }

  /** Marks unit `u` as ended. */
  end(u: number): void {
    this.ends.get(u)?.();
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
    this.outcomes.set(key, outcomeOf(error));
    this.errors.push({ where: key, error });
  }
}

/**
 * The outcome recorded for `error`: its name, and for `PartlyCommittedError` its cause's too
 * (`PartlyCommittedError:ConnectionLostError`): a killed connection can be that cause.
 */
function outcomeOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { cause } = error;
  return error.name === 'PartlyCommittedError' && cause instanceof Error
    ? `${error.name}:${cause.name}`
    : error.name;
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
  /** A connection outside the app's pool, to kill the app's connections from. */
  admin!: DataSource;
  readonly recorder = new Recorder();

  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly blocks: Blocks,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  /** Runs a body's steps on the current session; a throwing step rejects. */
  async body(unit: number, path: number[], steps: Step[]): Promise<void> {
    for (const [i, step] of steps.entries()) await this.step(unit, [...path, i], step);
  }

  private session = () => this.context.session();

  /** The current session's manager, or (`plain`) the DataSource's own manager: plain TypeORM. */
  private on(plain: boolean | undefined): EntityManager {
    return plain ? this.dataSource.manager : this.session();
  }

  private async step(unit: number, here: number[], step: Step): Promise<void> {
    const key = scopeKey(unit, here);
    const run =
      (body: Step[], at = here) =>
      () =>
        this.body(unit, at, body);
    switch (step.t) {
      case 'insert':
        return void (await insert(this.engine, this.on(step.plain), tagOf(unit, here)));
      case 'parallel':
        await Promise.all(
          Array.from({ length: step.n }, (_, k) =>
            insert(this.engine, this.on(step.plain), tagOf(unit, here, k)),
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
        await this.recorder.settle(key, () =>
          step.prop
            ? this.context.atomic(run(step.body), { propagation: Propagation[step.prop] })
            : this.blocks.required(run(step.body)),
        );
        return;
      case 'notSupported':
        await this.recorder.settle(key, () =>
          this.context.atomic(
            async () => {
              for (let k = 0; k < step.n; k++)
                await insert(this.engine, this.session(), tagOf(unit, here, k));
              if (step.throws) throw new UserError(`thrown at ${tagOf(unit, here)}`);
            },
            { propagation: Propagation.NOT_SUPPORTED },
          ),
        );
        return;
      case 'open':
        await this.recorder.settle(key, () => this.open(unit, step.ops, here));
        return;
      case 'never':
        await this.recorder.settle(key, () =>
          this.context.atomic(() => insert(this.engine, this.session(), tagOf(unit, here)), {
            propagation: Propagation.NEVER,
          }),
        );
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
      case 'rollback':
        await this.context.rollback();
        this.recorder.outcomes.set(key, 'ok');
        return;
      case 'stream':
        return this.stream(unit, here, step.n);
      case 'afterTest': {
        const tag = `${tagOf(unit, here)}/after-test`;
        const engine = this.engine;
        // Made now, in the unit: executed only after the test.
        const builder = this.dataSource
          .createQueryBuilder()
          .insert()
          .into('fuzz_row')
          .values({ tag, backend: 'builder' });
        const write = (): Promise<unknown> => {
          if (step.how === 'builder') return builder.execute();
          if (step.how === 'transaction')
            return this.dataSource.transaction((manager) => insert(engine, manager, tag));
          const runner = this.dataSource.createQueryRunner();
          return insert(engine, runner.manager, tag).finally(() => runner.release());
        };
        const work = async () => {
          await this.recorder.afterTestStarts;
          try {
            await write();
            this.recorder.afterTest.set(tag, 'ok');
          } catch (error) {
            this.recorder.afterTest.set(tag, error instanceof Error ? error.name : String(error));
          }
        };
        this.recorder.afterTestWork.push(work());
        return;
      }
      case 'late': {
        const tag = lateTag(unit, here);
        const kept = step.how === 'manager' ? this.session() : undefined;
        const work = async () => {
          await this.recorder.endOf(unit);
          try {
            await insert(this.engine, kept ?? this.on(step.how === 'plain'), tag);
            this.recorder.late.set(tag, 'ok');
          } catch (error) {
            this.recorder.late.set(tag, error instanceof Error ? error.name : String(error));
            this.recorder.errors.push({ where: tag, error });
          }
        };
        this.recorder.pending.push(work());
        return;
      }
      case 'arm':
        return void (await insert(this.engine, this.session(), tagOf(unit, here), step.hook));
      case 'throw':
        throw new UserError(`thrown at ${tagOf(unit, here)}`);
      case 'killSelf': {
        const session = this.session();
        const id = await backendId(this.engine, session);
        await this.admin
          .query(
            this.engine.name === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL ${id}`,
          )
          // A random kill of the program may have ended it first (MariaDB: "Unknown thread id").
          .catch((error: Error) => {
            if (!/Unknown thread id/.test(error.message)) throw error;
          });
        await insert(this.engine, session, tagOf(unit, here));
        throw new Error('unreachable: a statement on a killed connection succeeded');
      }
      case 'bad':
        await this.session().query('SELECT * FROM fuzz_missing_table');
        throw new Error('unreachable: the bad statement succeeded');
    }
  }

  /** A query-builder stream of `n` rows; each 'data' event writes a row on the session. */
  private async stream(unit: number, here: number[], n: number): Promise<void> {
    const rows = Array.from({ length: n }, (_, k) => `SELECT ${k} AS n`).join(' UNION ALL ');
    const stream = await this.session()
      .createQueryBuilder()
      .select('s.n', 'n')
      .from(`(${rows})`, 's')
      .stream();
    const writes: Array<Promise<unknown>> = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', () => {
        const write = insert(this.engine, this.session(), tagOf(unit, here, writes.length));
        write.catch(() => undefined); // awaited below, after the stream ended
        writes.push(write);
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    await Promise.all(writes);
  }

  /** Runs unit `u` of the current program and records its outcome, then marks it ended. */
  async runUnit(u: number, http: () => Promise<void>): Promise<boolean> {
    const ok = await this.unit(u, http);
    this.recorder.end(u);
    return ok;
  }

  private unit(u: number, http: () => Promise<void>): Promise<boolean> {
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

  /**
   * A `sessionFactory.open()` unit: its ops, then `close()`. Not `await using`: SWC (the tests'
   * compiler) emits a disposal helper that throws `ReferenceError: _SuppressedError is not
   * defined` when both the block and `close()` throw (a killed connection); the block's own error
   * is the one reported then.
   */
  private async open(u: number, ops: OpenOp[], path: number[] = []): Promise<void> {
    const session = this.factory.open();
    let failed = false;
    try {
      await this.openOps(session, u, ops, path);
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      await session.close().catch((error: unknown) => {
        if (!failed) throw error;
      });
    }
  }

  /** The ops of a `sessionFactory.open()` unit on `session`. */
  private async openOps(session: Session, u: number, ops: OpenOp[], path: number[]): Promise<void> {
    for (const [i, op] of ops.entries()) {
      const here = [...path, i];
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
