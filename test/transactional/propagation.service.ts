import { Injectable } from '@nestjs/common';
import { Propagation, SessionContext, Transactional } from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** Blocks in every propagation mode, each writing one row. */
@Injectable()
export class PropagationService {
  constructor(readonly context: SessionContext) {}

  @Transactional()
  async required(text: string, fail = false) {
    await this.context.session().insert(Example, { text });
    if (fail) throw new Error(`${text} failed`);
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async requiresNew(text: string, fail = false) {
    await this.context.session().insert(Example, { text });
    if (fail) throw new Error(`${text} failed`);
  }

  @Transactional({ propagation: Propagation.NESTED })
  async nested(text: string, fail = false) {
    await this.context.session().insert(Example, { text });
    if (fail) throw new Error(`${text} failed`);
  }

  @Transactional({ propagation: Propagation.MANDATORY })
  async mandatory(text: string) {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ propagation: Propagation.NEVER })
  async never(text: string) {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async notSupported(text: string) {
    await this.context.session().insert(Example, { text });
  }
}
