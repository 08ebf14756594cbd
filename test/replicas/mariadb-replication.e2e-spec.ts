import type { LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  InvalidOptionError,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** Keeps what was logged as a warning. */
class Warnings implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.lines.push(String(message));
  }
}

const url = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

/** Starts an app whose MariaDB data source has TypeORM replication (the server is its own replica). */
async function start(options: TypeOrmContextModuleOptions, warnings: Warnings) {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'mariadb',
        replication: { master: { url }, slaves: [{ url }] },
        entities: [Example],
        logging: false,
      }),
      TypeOrmContextModule.forRoot(options),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: warnings });
  try {
    await app.init();
  } catch (error) {
    await app.close(); // the data source connected before the module refused it
    throw error;
  }
  return app;
}

describe('MariaDB with TypeORM replication: routing to replicas is PostgreSQL-only', () => {
  it('with readReplicas left out, the app starts and warns once, naming the option that silences it', async () => {
    const warnings = new Warnings();
    const app = await start({}, warnings);
    await app.close();
    const about = warnings.lines.filter((line) => line.includes('PostgreSQL-only'));
    expect(about).toHaveLength(1);
    expect(about[0]).toMatch(/runs on the primary; set readReplicas: 'off'/);
    expect(about[0]).not.toMatch(/leave the option out/);
  });

  it("with readReplicas: 'readOnly' asked for, startup fails, offering 'off' or leaving the option out", async () => {
    const failure = await start({ readReplicas: 'readOnly' }, new Warnings()).then(
      async (app) => {
        await app.close();
        return 'started';
      },
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(InvalidOptionError);
    expect((failure as Error).message).toMatch(/readReplicas: 'off'.*or leave the option out/);
  });

  it("with readReplicas: 'off', nothing is said", async () => {
    const warnings = new Warnings();
    const app = await start({ readReplicas: 'off' }, warnings);
    await app.close();
    expect(warnings.lines.filter((line) => line.includes('PostgreSQL-only'))).toEqual([]);
  });
});
