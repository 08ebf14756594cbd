import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import type { DataSource, EntityManager, Repository } from 'typeorm';
import { InjectSession, Propagation, Transactional } from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** The custom methods given to `.extend()`. */
export const customMethods = {
  /** Inserts through the repository's own methods. */
  async addText(this: Repository<Example>, text: string): Promise<Example> {
    return this.save(this.create({ text }));
  },
};

/** A custom repository made with `.extend()`. */
export type ExampleRepository = Repository<Example> & typeof customMethods;

/** Token of the custom repository. */
export const EXAMPLE_REPOSITORY = 'EXAMPLE_REPOSITORY';

/** Uses the repositories the way application code does. */
@Injectable()
export class ExamplesService {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    @InjectRepository(Example, 'analytics') readonly analytics: Repository<Example>,
    @InjectSession() readonly session: EntityManager,
    @InjectSession('analytics') readonly analyticsSession: EntityManager,
    @InjectDataSource() readonly dataSource: DataSource,
  ) {}

  /** Inserts with save(), with a query builder and through `repo.manager`. */
  async insertThreeWays(prefix: string): Promise<void> {
    await this.examples.save({ text: `${prefix}_save` });
    await this.examples
      .createQueryBuilder()
      .insert()
      .values({ text: `${prefix}_builder` })
      .execute();
    await this.examples.manager.insert(Example, { text: `${prefix}_manager` });
  }

  /** A block of its own: the repository follows it onto the block's session. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async ownTransaction(text: string): Promise<void> {
    await this.examples.insert({ text });
  }
}
