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
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
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
for (let i = 0; i < WARMUP; i++) await one();
execSync(`callgrind_control -z ${child.pid}`, { stdio: 'ignore' });
for (let i = 0; i < Number(n); i++) await one();
execSync(`callgrind_control -d measured ${child.pid}`, { stdio: 'ignore' });
child.send({ cmd: 'stop' });
await new Promise((resolve) => child.on('exit', resolve));
