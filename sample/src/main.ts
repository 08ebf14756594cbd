import './tracing.js';
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { ReportJob } from './report.job.js';
import { seedUsers } from './seed.js';
import { SessionContext, SessionFactory } from 'nestjs-typeorm-context';
import { database } from './dev-database.js';

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

/** Boots the sample: database, app, seed data and a first report, then listens. */
async function bootstrap(): Promise<void> {
  const db = await database();
  const app = await NestFactory.create(AppModule.forRoot(db.url), { logger: ['error', 'warn'] });
  await app.init(); // the sessions are ready once the app is initialized

  // Outside any request: a script function with runInNewContext(), a job with @Transactional().
  const users = await seedUsers(app.get(SessionFactory), app.get(SessionContext));
  console.log(`[seed] ${users} user(s)`);
  await app.get(ReportJob).run();

  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  console.log(`\nSample app on ${url} (Ctrl+C to stop). Try:\n\n${curlLines(url).join('\n')}\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: closing the app and the database ...`);
    await app.close();
    await db.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

await bootstrap();
