import {
  type CanActivate,
  type ExecutionContext,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { transactionIdSql } from './database-options.js';
import { User } from './entities.js';

/** What the guard leaves on the request for the handler. */
export interface AuthenticatedRequest {
  headers: Record<string, string | undefined>;
  user?: User;
  guardTxid?: string;
}

/**
 * Loads the current user with a plain `@InjectRepository(User)` repository: registered with
 * `TypeOrmContextModule.forFeature([User])`, it runs in the request's session. Guards run before
 * interceptors; the context already exists because the library's middleware opened it.
 */
@Injectable()
export class CurrentUserGuard implements CanActivate {
  constructor(@InjectRepository(User) private readonly users: Repository<User>) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = request.headers.authorization?.replace(/^Bearer /, '') ?? '';
    const user = await this.users.findOneBy({ token });
    if (!user) throw new UnauthorizedException('unknown token');
    const [{ txid }] = await this.users.query(
      transactionIdSql(this.users.manager.connection.options.type),
    );
    request.user = user;
    request.guardTxid = txid;
    return true;
  }
}
