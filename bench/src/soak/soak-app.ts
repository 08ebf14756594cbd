/**
 * The soak's server: a Nest app in a process of its own (`node soak-app.js <port> <databaseUrl>`)
 * using the library the way the sample does, one endpoint per class of request. Every row a
 * request writes carries the request's id, so the driver can tell after the run which writes of
 * which request persisted. Reports readiness, pool counters and RSS over IPC.
 */
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  Headers,
  HttpCode,
  Module,
  Post,
  Query,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, TypeOrmContextModule } from '../../../dist/index.js';

/** The tenant of the request, as an app would carry it (its own AsyncLocalStorage or nestjs-cls). */
const tenants = new AsyncLocalStorage<string>();

const [port, databaseUrl] = process.argv.slice(2);

@Controller()
class SoakController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  private write(request: string, kind: string, manager = this.context.session()) {
    return manager.query('INSERT INTO soak_row (request, kind) VALUES ($1, $2)', [request, kind]);
  }

  /** Commits one row. */
  @Post('ok')
  @HttpCode(200)
  async ok(@Query('id') id: string) {
    await this.write(id, 'ok');
    return 'ok';
  }

  /** Writes two rows, then fails: nothing may persist. */
  @Post('throw')
  async throws(@Query('id') id: string) {
    await this.write(id, 'throw');
    await this.write(id, 'throw');
    throw new Error('handler failed after writing');
  }

  /** A row that breaks a deferred constraint: COMMIT fails, nothing may persist. */
  @Post('deferred')
  async deferred(@Query('id') id: string) {
    await this.write(id, 'deferred');
    await this.context
      .session()
      .query('INSERT INTO soak_child (request, parent) VALUES ($1, -1)', [id]);
    return 'ok';
  }

  /** Two rows around a wait during which the client goes away: both or neither. */
  @Post('abort')
  @HttpCode(200)
  async abort(@Query('id') id: string) {
    await this.write(id, 'abort');
    await new Promise((resolve) => setTimeout(resolve, 30));
    await this.write(id, 'abort');
    return 'ok';
  }

  /** Kills its own backend after a write: an error, and nothing may persist. */
  @Post('killed')
  async killed(@Query('id') id: string) {
    await this.write(id, 'killed');
    await this.context.session().query('SELECT pg_terminate_backend(pg_backend_pid())');
    await this.write(id, 'killed');
    return 'ok';
  }

  /** Holds its session and opens more independent sessions than the pool has. */
  @Post('exhaust')
  @HttpCode(200)
  async exhaust(@Query('id') id: string) {
    await this.write(id, 'exhaust');
    await Promise.all(
      [1, 2, 3].map(() =>
        this.factory.atomic(async (manager) => {
          await this.write(id, 'exhaust-independent', manager);
          await manager.query('SELECT pg_sleep(0.02)');
        }),
      ),
    );
    return 'ok';
  }

  /** Reads the tenant onSessionStart set, twice around a commit: it must be the request's own. */
  @Post('tenant')
  @HttpCode(200)
  async tenant(@Query('id') id: string, @Headers('x-tenant') tenant: string) {
    const session = this.context.session();
    const read = async () =>
      (
        (await session.query(`SELECT current_setting('app.tenant', true) AS t`)) as Array<{
          t: string;
        }>
      )[0]!.t;
    const first = await read();
    await this.context.commit();
    const second = await read();
    await this.write(id, `tenant:${tenant}:${first}:${second}`);
    return 'ok';
  }

  /** An afterCommit callback writes an outbox row on a session of its own. */
  @Post('outbox')
  @HttpCode(200)
  async outbox(@Query('id') id: string) {
    await this.write(id, 'outbox-order');
    this.context.afterCommit(() =>
      this.factory.atomic((manager) => this.write(id, 'outbox-message', manager)),
    );
    return 'ok';
  }
}

/**
 * What an app does with a commit whose outcome nobody knows (the connection died with the COMMIT
 * on its way): tell the client so, with its own status, instead of a plain 500.
 */
@Catch()
class OutcomeFilter implements ExceptionFilter {
  catch(error: Error & { getStatus?: () => number }, host: ArgumentsHost) {
    const response = host
      .switchToHttp()
      .getResponse<{ status(code: number): { json(body: unknown): void } }>();
    const status =
      error.name === 'CommitOutcomeUnknownError'
        ? 503
        : typeof error.getStatus === 'function'
          ? error.getStatus()
          : 500;
    response.status(status).json({ error: error.name });
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: databaseUrl,
      poolSize: Number(process.env.SOAK_POOL ?? 10),
      logging: false,
    }),
    TypeOrmContextModule.forRoot({
      acquireTimeout: 1000,
      callbackErrors: 'throw',
      onSessionStart: (session) =>
        session.query(`SELECT set_config('app.tenant', $1, true)`, [tenants.getStore() ?? '']),
    }),
  ],
  controllers: [SoakController],
})
class SoakModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(SoakModule, { logger: false });
  app.useGlobalFilters(new OutcomeFilter());
  app.use((request: { headers: Record<string, string> }, _response: unknown, next: () => void) =>
    tenants.run(request.headers['x-tenant'] ?? '', next),
  );
  const pool = (
    app.get(DataSource).driver as unknown as {
      master: { totalCount: number; idleCount: number; waitingCount: number };
    }
  ).master;
  process.on('message', (message: { cmd: string }) => {
    if (message.cmd === 'stats') {
      process.send!({
        type: 'stats',
        checkedOut: pool.totalCount - pool.idleCount,
        waiting: pool.waitingCount,
        rss: process.memoryUsage.rss(),
      });
    } else if (message.cmd === 'stop') {
      void app.close().finally(() => process.exit(0));
    }
  });
  await app.listen(Number(port), '127.0.0.1');
  process.send!({ type: 'ready', rss: process.memoryUsage.rss() });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
