// The built package loads in an app that has none of the optional integrations installed: a
// child process where every import of BullMQ, Bull, @nestjs/schedule or @nestjs/microservices
// fails as if the package were missing. Run by `npm test` after the Jest suites.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';

const hidden =
  '^(@nestjs/(bullmq|bull|bull-shared|schedule|microservices)|bullmq|bull|ioredis|cron|amqplib|amqp-connection-manager)(/|$)';

const hooks = `
const hidden = new RegExp(${JSON.stringify(hidden)});
export async function resolve(specifier, context, next) {
  if (hidden.test(specifier)) {
    throw Object.assign(new Error('Cannot find package ' + specifier), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}`;

const child = `
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));
const missing = await import('@nestjs/bullmq').then(() => false, () => true);
const lib = await import(${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)});
const testing = await import(${JSON.stringify(new URL('../../dist/testing/index.js', import.meta.url).href)});
lib.TypeOrmContextModule.forRoot({ jobs: true });
console.log(JSON.stringify({ missing, module: typeof lib.TypeOrmContextModule, kit: typeof testing.TestTransaction }));
`;

it('the main entry and the testing kit load without BullMQ, Bull, schedule or microservices', () => {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', child], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), {
    missing: true,
    module: 'function',
    kit: 'function',
  });
});
