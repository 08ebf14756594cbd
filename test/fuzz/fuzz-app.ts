/**
 * The app the fuzz programs run against: one per engine and pool size, reused across programs. Its
 * hooks fail where a program asks them to (`onSessionStart` for a unit that fails its BEGIN,
 * `beforeCommit` for a transaction holding an armed row).
 */
import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  type INestApplication,
  Param,
  Post,
  UseFilters,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule } from '../../src/index.js';
import type { Engine } from '../support/engines.js';
import { Blocks, HttpFailure, Interpreter, UserError, unitStore } from './interpreter.js';
import { scopeKey } from './model.js';

/** The fuzz app's `acquireTimeout` (ms): a wait for a full pool fails after it. */
export const ACQUIRE_TIMEOUT = 800;

/** Answers every error with 500 and its class name, and records it for the error-class check. */
@Catch()
class RecordingFilter implements ExceptionFilter {
  constructor(private readonly interpreter: Interpreter) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const unit = Number(http.getRequest<{ params: { unit: string } }>().params.unit);
    this.interpreter.recorder.errors.push({ where: scopeKey(unit, []), error });
    http
      .getResponse<{ status(code: number): { json(body: unknown): void } }>()
      .status(500)
      .json({ error: error instanceof Error ? error.name : String(error) });
  }
}

@Controller('fuzz')
@UseFilters(RecordingFilter)
class FuzzController {
  constructor(private readonly interpreter: Interpreter) {}

  @Post(':unit')
  async run(@Param('unit') unit: string) {
    await this.interpreter.httpBody(Number(unit));
    return { ok: true };
  }
}

/** A started fuzz app. */
export interface FuzzApp {
  app: INestApplication;
  dataSource: DataSource;
  interpreter: Interpreter;
  /** Set when a program hung in it: it is replaced before the next program. */
  broken?: boolean;
  /** Sends unit `u` as a request; rejects with the error's class name unless it answered 2xx. */
  post(u: number): Promise<void>;
}

/** Builds the fuzz app for an engine and a pool size. */
export async function createFuzzApp(engine: Engine, pool: number): Promise<FuzzApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({ ...engine.options, entities: [], poolSize: pool, logging: false }),
      TypeOrmContextModule.forRoot({
        acquireTimeout: ACQUIRE_TIMEOUT,
        // Plain TypeORM steps (the DataSource's own manager) join the unit like session() ones.
        plainTypeorm: 'join',
        onSessionStart: () => {
          const store = unitStore.getStore();
          if (store?.failBegin) {
            store.failBegin = false;
            throw new UserError('onSessionStart failed');
          }
        },
        beforeCommit: async (session) => {
          const armed: unknown[] = await session.query(
            engine.name === 'postgres'
              ? 'SELECT tag FROM fuzz_row WHERE hook_fail'
              : 'SELECT tag FROM fuzz_row WHERE hook_fail = 1',
          );
          if (armed.length > 0) throw new UserError('beforeCommit failed');
        },
      }),
    ],
    controllers: [FuzzController],
    providers: [Blocks, Interpreter, RecordingFilter],
  }).compile();
  const app = moduleRef.createNestApplication({
    logger: process.env.TEST_LOG ? ['error', 'warn'] : false,
  });
  await app.init();
  const interpreter = app.get(Interpreter);
  interpreter.engine = engine;
  const dataSource = app.get(DataSource);
  const post = async (u: number) => {
    const response = await request(app.getHttpServer()).post(`/fuzz/${u}`);
    if (response.status >= 300) {
      const error = new HttpFailure(`HTTP ${response.status}`);
      error.name = (response.body as { error?: string }).error ?? `HTTP ${response.status}`;
      throw error;
    }
  };
  return { app, dataSource, interpreter, post };
}
