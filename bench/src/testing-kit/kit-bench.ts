/**
 * Testing-kit benchmark: a suite of 200 tests, each placing an order of ten rows across five
 * tables over HTTP, run with (a) this library's TestTransaction, (b) TRUNCATE ... CASCADE before
 * each test, (c) typeorm-transactional-tests around a typeorm-transactional app. Each mode runs
 * in a process of its own, the modes alternating over rounds. `npm run bench:kit`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const MODES = [
  'none',
  'kit',
  'truncate',
  'typeorm-transactional (none)',
  'typeorm-transactional-tests',
] as const;
/** The run without any isolation each mode is compared with (same app, nothing around the tests). */
const FLOOR: Record<string, string> = {
  kit: 'none',
  truncate: 'none',
  'typeorm-transactional-tests': 'typeorm-transactional (none)',
};
const TESTS = Number(process.env.BENCH_KIT_TESTS ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function run(mode: string): number {
  const output = execFileSync(
    process.execPath,
    [path.join(here, 'kit-run.js'), mode, String(TESTS)],
    {
      cwd: path.resolve(here, '../../..'),
    },
  ).toString();
  const { perTest } = JSON.parse(output) as { perTest: number };
  console.log(`[bench:kit] ${mode.padEnd(28)} ${perTest.toFixed(2)} ms per test`);
  return perTest;
}

const times: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  const order = [...MODES.slice(round % MODES.length), ...MODES.slice(0, round % MODES.length)];
  for (const mode of order) (times[mode] ??= []).push(run(mode));
}
const kit = median(times.kit!);
const rows = MODES.map((mode) => {
  const perTest = median(times[mode]!);
  const suite = ((perTest * TESTS) / 1000).toFixed(1);
  return `| ${mode} | ${perTest.toFixed(2)} | ${suite} | ${(perTest / kit).toFixed(2)}x |`;
});
const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();
const report = [
  `# Testing-kit benchmark ${new Date().toISOString().slice(0, 10)}`,
  '',
  `${TESTS} tests per run, each placing an order (10 rows across 5 tables) over HTTP, reading it back over HTTP and counting its lines through the DataSource; medians of ${ROUNDS} rounds, modes alternating. Node ${process.version}, library at ${commit}.`,
  '',
  '| mode | ms per test | s per suite | vs the kit |',
  '|---|---:|---:|---:|',
  ...rows,
  '',
  "- none: nothing around the tests (the app on nestjs-typeorm-context): what the test's own work costs.",
  '- kit: `TestTransaction.start(app)` / `tx.rollback()` around each test (nestjs-typeorm-context).',
  '- truncate: `TRUNCATE ... RESTART IDENTITY CASCADE` of the five tables before each test, the app on nestjs-typeorm-context.',
  '- typeorm-transactional (none): the same shop on typeorm-transactional, nothing around the tests.',
  '- typeorm-transactional-tests: `TransactionalTestContext` start/finish around each test, the app on typeorm-transactional (it cannot run around an app on this library: it hands every runner the same one).',
].join('\n');
console.log(`\n${report}`);
const dir = path.resolve(here, '../../../../results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  path.join(dir, `${new Date().toISOString().slice(0, 10)}-testing-kit.md`),
  `${report}\n`,
);
