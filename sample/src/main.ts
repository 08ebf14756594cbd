import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { ReportJob } from './report.job.js';
import { seedUsers } from './seed.js';
import { SessionContext, SessionFactory } from '../../dist/index.js';

const curlLines = (url: string) => [
  `# auto-commit: create a note, list the notes`,
  `curl -s -X POST ${url}/notes -H 'content-type: application/json' -d '{"text":"hello"}'`,
  `curl -s ${url}/notes`,
  `# rollback: writes, then throws -> 500, no row`,
  `curl -s -X POST ${url}/notes/fail -H 'content-type: application/json' -d '{"text":"lost"}'`,
  `# early commit: the first write is committed before the error, the second is not`,
  `curl -s -X POST ${url}/notes/early-commit -H 'content-type: application/json' -d '{"text":"early"}'`,
  `# REQUIRES_NEW: the audit entry survives the rolled-back note`,
  `curl -s -X POST ${url}/notes/audited -H 'content-type: application/json' -d '{"text":"audited","fail":true}'`,
  `curl -s ${url}/audit`,
  `# NESTED: one savepoint per note, the empty text fails alone`,
  `curl -s -X POST ${url}/notes/batch -H 'content-type: application/json' -d '{"texts":["one","","three"]}'`,
  `# parallel: independent sessions vs the one request session`,
  `curl -s '${url}/parallel?n=4'`,
  `# a guard that loads the user through the request's session`,
  `curl -s ${url}/me -H 'authorization: Bearer alice-token'`,
];

/** Boots the app on `databaseUrl`; the caller (start.mjs) closes it on SIGINT/SIGTERM. */
export async function bootstrap(databaseUrl: string, port: number) {
  const app = await NestFactory.create(AppModule.forRoot(databaseUrl), {
    logger: ['error', 'warn'],
  });
  await app.init(); // the sessions are ready once the app is initialized

  // Outside any request: a script function with runInNewContext(), a job with @Transactional().
  const users = await seedUsers(app.get(SessionFactory), app.get(SessionContext));
  console.log(`[seed] ${users} user(s)`);
  await app.get(ReportJob).run();

  await app.listen(port, '127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  console.log(`\nSample app on ${url} (Ctrl+C to stop). Try:\n\n${curlLines(url).join('\n')}\n`);
  return app;
}
