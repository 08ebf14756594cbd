import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Propagation, SessionContext, Transactional } from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** What a retried block runs on each attempt. */
export type AttemptBody = (manager: EntityManager, attempt: number) => Promise<void>;

/** Blocks with transaction options, called outside any context or inside one. */
@Injectable()
export class OptionsService {
  /** Attempts of the retrying blocks since the last reset. */
  attempts = 0;
  /** The body the retrying blocks run. */
  body: AttemptBody = async () => undefined;

  constructor(readonly context: SessionContext) {}

  @Transactional({ readOnly: true })
  async readOnlyInsert(seen: { rows?: number }) {
    seen.rows = await this.context.session().count(Example);
    await this.context.session().insert(Example, { text: 'read_only_write' });
  }

  @Transactional({ timeout: 300 })
  async sleepy(sleepSql: string) {
    await this.context.session().insert(Example, { text: 'before_sleep' });
    await this.context.session().query(sleepSql);
  }

  @Transactional({
    propagation: Propagation.REQUIRES_NEW,
    isolationLevel: 'REPEATABLE READ',
    retry: 2,
  })
  async ownRetrying() {
    await this.body(this.context.session(), ++this.attempts);
  }

  @Transactional({ retry: 2 })
  async joinedRetrying() {
    await this.body(this.context.session(), ++this.attempts);
  }
}
