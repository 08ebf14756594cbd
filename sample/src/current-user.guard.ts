import {
  type CanActivate,
  type ExecutionContext,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { User } from './entities.js';
import { SessionContext } from '../../dist/index.js';

/** What the guard leaves on the request for the handler. */
export interface AuthenticatedRequest {
  headers: Record<string, string | undefined>;
  user?: User;
  guardTxid?: string;
}

/**
 * Loads the current user through the request's session. Guards run before interceptors; the
 * context already exists because the library's middleware opened it.
 */
@Injectable()
export class CurrentUserGuard implements CanActivate {
  constructor(private readonly sessionContext: SessionContext) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = request.headers.authorization?.replace(/^Bearer /, '') ?? '';
    const db = this.sessionContext.session();
    const user = await db.findOneBy(User, { token });
    if (!user) throw new UnauthorizedException('unknown token');
    const [{ txid }] = await db.query('SELECT txid_current()::text AS txid');
    request.user = user;
    request.guardTxid = txid;
    return true;
  }
}
