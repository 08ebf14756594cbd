/**
 * The randomized model-based test on SQLite (docs/fuzz.md): programs of 5-30 concurrent
 * operations against one app on an in-memory database, checked row by row against the model.
 * `FUZZ_SQLITE_RUNS` programs per driver (default 100), seeded by `FUZZ_SQLITE_SEED`;
 * `FUZZ_SQLITE_PATH` replays one shrunk failure; `FUZZ_SQLITE_PROGRAM` runs a printed program.
 */
import fc from 'fast-check';
import { ConnectionAcquireTimeoutError } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, sqliteEngines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import {
  FuzzSqliteController,
  FuzzSqliteService,
  RecordingFilter,
  messageOf,
  seenErrors,
} from './fuzz-sqlite-app.js';
import {
  type Op,
  type Program,
  type SelfWait,
  expected,
  failure,
  isReadOnlyRefusal,
  programArb,
  READ_ONLY_REFUSED,
  texts,
} from './model.js';
import { APP_FILTER } from '@nestjs/core';

const runs = Number(process.env.FUZZ_SQLITE_RUNS ?? 100);
const seed =
  process.env.FUZZ_SQLITE_SEED === undefined
    ? Date.now() ^ (Math.random() * 0x100000000)
    : Number(process.env.FUZZ_SQLITE_SEED);
const path = process.env.FUZZ_SQLITE_PATH;

/** The driver errors of a shared connection that the one connection's turns must make impossible. */
const DRIVER_TRANSACTION_ERRORS =
  /within a transaction|no such savepoint|no transaction is active|SQLITE_BUSY|database is locked/i;

/** What an operation reported: ok or not, the error's message, what its inner block reported. */
interface Outcome {
  ok: boolean;
  error?: string;
  inner?: string;
  count?: number;
}

/** Fails if `promise` does not settle within `ms`: a hang is a failure too. */
async function bounded<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Builds an app of the fuzz on `engine` with `acquireTimeout`. */
function fuzzApp(engine: Engine, acquireTimeout: number): Promise<TestApp> {
  return createTestApp(engine, {
    controllers: [FuzzSqliteController],
    providers: [FuzzSqliteService, { provide: APP_FILTER, useClass: RecordingFilter }],
    context: { acquireTimeout },
  });
}

describe.each(sqliteEngines)('randomized model-based test on SQLite ($name)', (engine) => {
  /** The app of the steps (default acquireTimeout: nothing waits that long). */
  let t: TestApp;
  /** The self-wait's app: acquireTimeout 300 ms, an in-memory database of its own. */
  let selfWaitApp: TestApp;
  let program = 0;
  /** Whether the last program hung: its apps are replaced before the next. */
  let broken = false;

  beforeAll(async () => {
    t = await fuzzApp(engine, 10_000);
    selfWaitApp = await fuzzApp(engine, 300);
  });
  afterAll(async () => {
    await t?.close();
    await selfWaitApp?.close();
  });

  /** Runs one operation for `tag` and reports its outcome (never rejects). */
  async function runOp(tag: string, op: Op): Promise<Outcome> {
    const service = t.app.get(FuzzSqliteService);
    const settle = async (block: () => Promise<unknown>): Promise<Outcome> => {
      try {
        const value = await block();
        return { ok: true, count: typeof value === 'number' ? value : undefined };
      } catch (error) {
        return { ok: false, error: messageOf(error) };
      }
    };
    switch (op.kind) {
      case 'outsideNew':
        return settle(() =>
          service.independent(
            op.via,
            texts(tag, 'b', op.block),
            op.blockFail ? failure(tag) : undefined,
          ),
        );
      case 'plain':
        return settle(async () => {
          const names = texts(tag, 'p', op.writes);
          if (op.via === 'insert') {
            for (const text of names) await t.dataSource.manager.insert(Example, { text });
            return;
          }
          await t.dataSource.transaction(async (manager) => {
            for (const text of names) await manager.insert(Example, { text });
            if (op.fail) throw new Error(failure(tag));
          });
        });
      case 'readOnly':
        if (op.where === 'outside')
          return settle(() => service.readOnly(op.write ? texts(tag, 'r', 1)[0] : undefined));
      // fallthrough: a request
      default: {
        const response = await t.http().post('/op').send({ tag, op });
        const body = response.body as { message?: string; inner?: string; count?: number };
        if (response.status === 201) return { ok: true, inner: body.inner, count: body.count };
        return { ok: false, error: body.message ?? `status ${response.status}` };
      }
    }
  }

  /** Runs the self-wait on its own app and checks it: the documented timeout, nothing else. */
  async function checkSelfWait(tag: string, op: SelfWait): Promise<void> {
    const response = await selfWaitApp.http().post('/self-wait').send({ tag, op });
    const body = response.body as { message?: string; inner?: string };
    expect({ tag, status: response.status, message: body.message, inner: body.inner }).toEqual({
      tag,
      status: op.fail ? 500 : 201,
      message: op.fail ? failure(tag) : undefined,
      inner: op.fail ? undefined : ConnectionAcquireTimeoutError.name,
    });
    await selfWaitApp.expectClean();
    expect(await selfWaitApp.texts()).toEqual(op.fail ? [] : texts(tag, 'w', 1));
    await selfWaitApp.dataSource.query('DELETE FROM example');
  }

  /** Runs `p` and checks every row, every outcome, every error and the connection afterwards. */
  async function check(p: Program): Promise<void> {
    program++;
    seenErrors.length = 0;
    if (broken) {
      // A program that hung left work behind: the next one (shrinking) gets fresh apps.
      broken = false;
      await bounded(t.close(), 'closing a broken app', 5000).catch(() => undefined);
      await bounded(selfWaitApp.close(), 'closing a broken app', 5000).catch(() => undefined);
      t = await fuzzApp(engine, 10_000);
      selfWaitApp = await fuzzApp(engine, 300);
    }
    const unhandled: string[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(messageOf(reason));
    process.on('unhandledRejection', onUnhandled);
    try {
      await runAndCheck(p);
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } catch (error) {
      broken = /did not settle|condition not met/.test(messageOf(error));
      throw error;
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  }

  /** Runs `p` and checks it (see check). */
  async function runAndCheck(p: Program): Promise<void> {
    await t.dataSource.query('DELETE FROM example');
    const tags = p.steps.map((_, i) => `p${program}_o${i}`);
    const selfWaitTag = `p${program}_self`;
    const [outcomes] = await bounded(
      Promise.all([
        Promise.all(
          p.steps.map(async ({ delay, op }, i) => {
            if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
            return runOp(tags[i]!, op);
          }),
        ),
        p.selfWait ? checkSelfWait(selfWaitTag, p.selfWait) : undefined,
      ]),
      'the program',
      20_000,
    );
    await t.expectClean();

    // Each operation reported what the model predicts; every error is the planned one.
    const reported = p.steps.map(({ op }, i) => {
      const { ok, error, inner, count } = outcomes[i]!;
      return {
        tag: tags[i],
        ok,
        inner,
        counted: typeof count === 'number' ? 'number' : undefined,
        // A refused read-only write fails with SQLite's refusal instead of a planned failure.
        error:
          op.kind === 'readOnly' && error !== undefined && isReadOnlyRefusal(error)
            ? READ_ONLY_REFUSED
            : error,
      };
    });
    const predicted = p.steps.map(({ op }, i) => {
      const model = expected(tags[i]!, op);
      return {
        tag: tags[i],
        ok: model.ok,
        error: model.ok
          ? undefined
          : op.kind === 'readOnly'
            ? READ_ONLY_REFUSED
            : failure(tags[i]!),
        inner: model.inner,
        counted:
          op.kind === 'readOnly' && model.ok && model.inner === undefined ? 'number' : undefined,
      };
    });
    expect(reported).toEqual(predicted);

    // Exactly the rows the model predicts: none lost, none extra.
    const rows = p.steps.flatMap(({ op }, i) => expected(tags[i]!, op).rows).sort();
    expect(await t.texts()).toEqual(rows);

    // No driver transaction error anywhere (responses, caught blocks, outside calls).
    const errors = [...seenErrors, ...outcomes.map((outcome) => outcome.error ?? '')];
    expect(errors.filter((message) => DRIVER_TRANSACTION_ERRORS.test(message))).toEqual([]);
  }

  it(`${runs} random programs leave exactly the model's rows (seed ${seed})`, async () => {
    await fc.assert(
      fc.asyncProperty(programArb, (p) => check(p)),
      { seed, numRuns: runs, path, endOnFailure: process.env.FUZZ_SQLITE_SHRINK === '0' },
    );
  }, 600_000);

  // FUZZ_SQLITE_PROGRAM: a program printed by a failure (its JSON), replayed as it is.
  if (process.env.FUZZ_SQLITE_PROGRAM) {
    it('replays FUZZ_SQLITE_PROGRAM', async () => {
      // fast-check prints the counterexample as the property's arguments: `[program]`.
      const given = JSON.parse(process.env.FUZZ_SQLITE_PROGRAM!) as Program | [Program];
      await check(Array.isArray(given) ? given[0] : given);
    }, 60_000);
  }
});
