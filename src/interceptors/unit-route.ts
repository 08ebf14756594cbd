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
  // The pattern the message came on, where the transport's context says (TCP, RabbitMQ...).
  const arrived = type === 'rpc' ? arrivedOn(context.switchToRpc().getContext()) : undefined;
  if (arrived !== undefined) return arrived;
  const found: unknown = Reflect.getMetadata(key, context.getHandler());
  const patterns = Array.isArray(found) ? found : [found];
  // A handler of several patterns, on a transport that does not say which: none of them for sure.
  if (patterns.length !== 1 || patterns[0] === undefined) return undefined;
  return typeof patterns[0] === 'string' ? patterns[0] : JSON.stringify(patterns[0]);
}

/** What a microservice context says the message came on: its pattern, channel, subject or topic. */
function arrivedOn(rpcContext: unknown): string | undefined {
  const context = rpcContext as Record<string, unknown> | null | undefined;
  if (typeof context !== 'object' || context === null) return undefined;
  for (const method of ['getPattern', 'getChannel', 'getSubject', 'getTopic']) {
    const read = context[method];
    if (typeof read !== 'function') continue;
    const value: unknown = (read as () => unknown).call(context);
    if (typeof value === 'string') return value;
  }
  return undefined;
}
