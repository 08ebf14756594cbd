import type { ExecutionContext } from '@nestjs/common';

/** Nest's metadata keys of a message handler's pattern (`@MessagePattern`, `@EventPattern`) and WebSocket message. */
const PATTERN_METADATA = 'microservices:pattern';
const MESSAGE_METADATA = 'message';

/** What an HTTP request object may say of its route (Express 4/5, Fastify 4/5). */
interface RoutedRequest {
  method?: string;
  route?: { path?: unknown };
  routeOptions?: { url?: unknown };
  routerPath?: unknown;
}

/** The handler `context` runs, as the `unit` channel names it: `UsersController.create()`. */
export function handlerName(context: ExecutionContext): string {
  return `${context.getClass().name}.${context.getHandler().name}()`;
}

/**
 * The route or pattern a handler serves, for the `unit` channel: `POST /notes/:id` (the route's
 * template, never the URL with its ids), a message pattern (`{"cmd":"sum"}`), a WebSocket
 * message name; undefined when the transport does not say.
 */
export function routeOf(context: ExecutionContext): string | undefined {
  const type = context.getType<string>();
  if (type === 'http') {
    const request = context.switchToHttp().getRequest<RoutedRequest>();
    const path = request.route?.path ?? request.routeOptions?.url ?? request.routerPath;
    return typeof path === 'string' ? `${request.method ?? ''} ${path}`.trim() : undefined;
  }
  const key = type === 'rpc' ? PATTERN_METADATA : type === 'ws' ? MESSAGE_METADATA : undefined;
  if (key === undefined) return undefined;
  const found: unknown = Reflect.getMetadata(key, context.getHandler());
  const pattern = Array.isArray(found) ? found[0] : found;
  if (pattern === undefined) return undefined;
  return typeof pattern === 'string' ? pattern : JSON.stringify(pattern);
}
