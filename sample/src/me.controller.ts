import { Controller, Get, Req, UseGuards } from '@nestjs/common';
import { type AuthenticatedRequest, CurrentUserGuard } from './current-user.guard.js';
import { SessionContext } from 'nestjs-typeorm-context';
import { transactionIdSql } from './database-options.js';

@Controller('me')
export class MeController {
  constructor(private readonly sessionContext: SessionContext) {}

  /** The guard and the handler share the request's session: the same transaction id. */
  @Get()
  @UseGuards(CurrentUserGuard)
  async me(@Req() request: AuthenticatedRequest) {
    const [{ txid }] = await this.sessionContext
      .session()
      .query(transactionIdSql(this.sessionContext.session().connection.options.type));
    return { user: request.user?.name, guardTxid: request.guardTxid, handlerTxid: txid };
  }
}
