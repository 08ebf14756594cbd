// Sequential requests against one variant's server running under callgrind; zeroes the counters
// after the warm-up and dumps them after the measured requests (see ./measure.sh).
// node drive.mjs <variant> <endpoint> <requests> <library: dist | dist-previous> <node wrapper>
import { execSync, fork } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [variant, endpoint, n, library, execPath] = process.argv.slice(2);
const bench = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WARMUP = Number(process.env.WARMUP ?? 300);
// Requests in flight at once (CONCURRENCY, default 1): above the pool size (BENCH_POOL), requests
// wait for connections, and the count holds what a wait costs.
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 1);
const port = 3991 + Math.floor(Math.random() * 100);
const child = fork(path.join(bench, '.tmp/js/bench/server.js'), [variant, String(port)], {
  env: { ...process.env, BENCH_LIBRARY: library },
  execPath,
  execArgv: ['--no-warnings'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  cwd: bench,
});
const message = (type) => new Promise((resolve) => child.on('message', (m) => m.type === type && resolve(m)));
await message('ready');
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const method = ['write', 'commit-then-wait'].includes(endpoint) ? 'POST' : 'GET';
const one = () =>
  new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: `/${endpoint}`, method, agent }, (response) => {
      response.resume();
      response.on('end', resolve);
    });
    request.on('error', reject);
    request.end();
  });
/** `count` requests, CONCURRENCY at a time. */
const run = async (count) => {
  let left = count;
  const worker = async () => {
    while (left-- > 0) await one();
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
};
await run(WARMUP);
execSync(`callgrind_control -z ${child.pid}`, { stdio: 'ignore' });
await run(Number(n));
execSync(`callgrind_control -d measured ${child.pid}`, { stdio: 'ignore' });
child.send({ cmd: 'stop' });
await new Promise((resolve) => child.on('exit', resolve));
