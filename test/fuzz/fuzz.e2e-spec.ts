/**
 * The randomized model-based test of issue 18: random programs of concurrent units against the
 * real databases, checked after each program (see check.ts). `FUZZ_RUNS` programs per engine
 * (default sized for CI), seeded by `FUZZ_SEED`; `FUZZ_PATH` replays one shrunk failure.
 * `npm run fuzz -- --runs 500` runs more; `npm run fuzz -- --seed <seed> --path <path>` replays.
 */
import fc from 'fast-check';
import { DataSource } from 'typeorm';
import { type Engine, engines } from '../support/engines.js';
import { bounded, runProgram } from './check.js';
import { type FuzzApp, createFuzzApp } from './fuzz-app.js';
import { tableSql } from './interpreter.js';
import { programArb } from './generator.js';
import type { Program } from './model.js';
import { regressions } from './regressions.js';

const runs = Number(process.env.FUZZ_RUNS ?? 60);
const seed =
  process.env.FUZZ_SEED === undefined
    ? Date.now() ^ (Math.random() * 0x100000000)
    : Number(process.env.FUZZ_SEED);
const path = process.env.FUZZ_PATH;
/** Through PgBouncer (`npm run test:pgbouncer`) programs kill no server connection: see GenOptions. */
const kills = process.env.PGBOUNCER !== '1';
const replays = Number(process.env.FUZZ_REPLAYS ?? 1);

describe.each(engines)('randomized model-based test on $name', (engine: Engine) => {
  const apps = new Map<number, FuzzApp>();
  let tableCreated = false;

  /** The app of a pool size, created on first use (the table with the first one). */
  async function appFor(pool: number): Promise<FuzzApp> {
    let fuzz = apps.get(pool);
    if (fuzz?.broken) {
      await bounded(fuzz.app.close(), 'closing a broken app', 5000).catch(() => undefined);
      apps.delete(pool);
      fuzz = undefined;
    }
    if (!fuzz) {
      fuzz = await createFuzzApp(engine, pool);
      if (!tableCreated) for (const sql of tableSql(engine)) await fuzz.dataSource.query(sql);
      tableCreated = true;
      apps.set(pool, fuzz);
    }
    return fuzz;
  }

  /** A connection of its own, to kill the app's connections from. */
  let admin: DataSource;

  beforeAll(async () => {
    admin = await new DataSource({ ...engine.options, poolSize: 1 }).initialize();
    await appFor(3);
  });
  afterAll(async () => {
    for (const fuzz of apps.values()) await fuzz.app.close();
    await admin.destroy();
  });

  it(`${runs} random programs keep every invariant (seed ${seed})`, async () => {
    await fc.assert(
      fc.asyncProperty(programArb({ engine: engine.name, kills }), async (program) =>
        runProgram(engine, await appFor(program.pool), program, admin),
      ),
      { seed, numRuns: runs, path, endOnFailure: process.env.FUZZ_SHRINK === '0' },
    );
  }, 3_600_000);

  const mine = regressions.filter(
    (regression) =>
      (regression.engine ?? engine.name) === engine.name && (kills || !killsIn(regression.program)),
  );
  for (const { name, program } of mine) {
    it(`replays regression: ${name}`, async () => {
      await runProgram(engine, await appFor(program.pool), program, admin);
    }, 60_000);
  }

  // FUZZ_PROGRAM: a program (or an array of programs, run in order) printed by a failure.
  if (process.env.FUZZ_PROGRAM) {
    const given = JSON.parse(process.env.FUZZ_PROGRAM) as Program | Program[];
    const programs = Array.isArray(given) ? given : [given];
    it(`replays FUZZ_PROGRAM ${replays} time(s)`, async () => {
      for (let i = 0; i < replays; i++)
        for (const program of programs)
          await runProgram(engine, await appFor(program.pool), program, admin);
    }, 3_600_000);
  }
});

/** Whether `program` kills a server connection (a random kill or a unit's own). */
function killsIn(program: Program): boolean {
  return program.kill !== undefined || JSON.stringify(program.units).includes('"killSelf"');
}
