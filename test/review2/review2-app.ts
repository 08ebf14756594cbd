import type { LoggerService, Provider, Type, DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  AfterInsert,
  BaseEntity,
  Column,
  DataSource,
  Entity,
  EventSubscriber,
  type EntitySubscriberInterface,
  type InsertEvent,
  ManyToOne,
  PrimaryGeneratedColumn,
  Tree,
  TreeChildren,
  TreeParent,
} from 'typeorm';
import { TypeOrmContextModule, type TypeOrmContextModuleOptions } from '../../src/index.js';
import { wrap, type TestApp } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** The data source the listeners and subscribers write through (set per app). */
export const holder = {
  dataSource: undefined as DataSource | undefined,
  hook: 'off' as 'off' | 'manager' | 'repository',
};

@Entity('r2_author')
export class R2Author {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
}

@Entity('r2_book')
export class R2Book {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100 }) title!: string;
  @ManyToOne(() => R2Author, { lazy: true, nullable: true }) author!: Promise<R2Author | null>;
  @ManyToOne(() => R2Author, { eager: true, nullable: true }) editor!: R2Author | null;
}

@Entity('r2_audit')
export class R2Audit {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100 }) note!: string;
}

@Entity('r2_node')
@Tree('closure-table')
export class R2Node {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
  @TreeChildren() children!: R2Node[];
  @TreeParent() parent!: R2Node | null;
}

@Entity('r2_active')
export class R2Active extends BaseEntity {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
}

/** An entity whose listener writes an audit row through the plain data source. */
@Entity('r2_listened')
export class R2Listened {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;

  @AfterInsert()
  async audit(): Promise<void> {
    await holder.dataSource!.getRepository(R2Audit).insert({ note: `listener:${this.name}` });
  }
}

/** A subscriber that writes an audit row for every book through the plain data source. */
@EventSubscriber()
export class R2BookSubscriber implements EntitySubscriberInterface<R2Book> {
  listenTo() {
    return R2Book;
  }

  async afterInsert(event: InsertEvent<R2Book>): Promise<void> {
    if (holder.hook === 'manager') {
      await holder.dataSource!.manager.insert(R2Audit, {
        note: `subscriber:${event.entity.title}`,
      });
    } else if (holder.hook === 'repository') {
      await holder
        .dataSource!.getRepository(R2Audit)
        .save({ note: `subscriber:${event.entity.title}` });
    }
  }
}

export const entities = [Example, R2Author, R2Book, R2Audit, R2Node, R2Active, R2Listened];

/** Options of an app of these specs. */
export interface Review2Parts {
  context?: TypeOrmContextModuleOptions;
  poolSize?: number;
  providers?: Provider[];
  controllers?: Type[];
  imports?: Array<Type | DynamicModule>;
  features?: boolean;
  logger?: LoggerService | false;
}

/** The TypeORM options of these specs' apps. */
export function review2Options(engine: Engine, poolSize = 10) {
  return {
    ...engine.options,
    entities,
    subscribers: [R2BookSubscriber],
    synchronize: true,
    poolSize,
    logging: false,
  };
}

/** Builds and starts an app with the entities above (plain `TypeOrmModule.forFeature`). */
export async function createReview2App(engine: Engine, parts: Review2Parts = {}): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(review2Options(engine, parts.poolSize)),
      TypeOrmContextModule.forRoot(parts.context ?? {}),
      TypeOrmModule.forFeature([R2Author, R2Book, R2Audit, R2Node, R2Active, R2Listened, Example]),
      ...(parts.imports ?? []),
    ],
    controllers: parts.controllers ?? [],
    providers: parts.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: parts.logger ?? false });
  await app.init();
  const dataSource = app.get(DataSource);
  await clear(dataSource);
  return wrap(app, engine, dataSource);
}

/** Empties every table of these specs. */
export async function clear(dataSource: DataSource): Promise<void> {
  for (const table of ['r2_book', 'r2_author', 'r2_audit', 'r2_active', 'r2_listened', 'example']) {
    await dataSource.query(`DELETE FROM ${table}`);
  }
  await dataSource.getTreeRepository(R2Node).query('DELETE FROM r2_node_closure');
  await dataSource.query(
    'UPDATE r2_node SET "parentId" = NULL'.replace(
      /"/g,
      dataSource.options.type === 'postgres' ? '"' : '`',
    ),
  );
  await dataSource.query('DELETE FROM r2_node');
}

/** Rows of `table`, counted on a fresh connection. */
export async function count(dataSource: DataSource, table: string): Promise<number> {
  const rows: Array<{ n: string | number }> = await dataSource.query(
    `SELECT count(*) AS n FROM ${table}`,
  );
  return Number(rows[0]!.n);
}

/** A logger that keeps the warnings. */
export function recordingLogger(warnings: string[]): LoggerService {
  return {
    log: () => undefined,
    error: () => undefined,
    warn: (message: unknown) => void warnings.push(String(message)),
    debug: () => undefined,
    verbose: () => undefined,
  };
}

/** Fails if `promise` does not settle within `ms` (a hang, not a slow test). */
export function within<T>(promise: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`hung for ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
