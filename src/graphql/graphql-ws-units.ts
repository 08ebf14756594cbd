import { contextStorage } from '../context/context-storage.js';
import { reportEndError } from './end-error.js';
import { OperationUnit, type OperationResult } from './operation-unit.js';

/**
 * The results of a subscription (graphql-js maps each event of its source to one), each resolved
 * in a unit of work of its own: `next()` starts the source's `next()` in a new unit, so that the
 * event's execution (its resolvers, its DataLoader batches) runs there, and ends the unit once
 * the result is ready, before graphql-ws sends it.
 */
class EventUnits implements AsyncIterableIterator<unknown> {
  constructor(private readonly results: AsyncIterator<unknown>) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<unknown>> {
    const { frame, end } = OperationUnit.event();
    let step: IteratorResult<unknown>;
    try {
      step = await contextStorage.run(frame, () => this.results.next());
    } catch (error) {
      await end(undefined);
      throw error;
    }
    // The source's end commits what it wrote before it, like the end of a streamed response.
    const result: OperationResult = step.done === true ? {} : (step.value as OperationResult);
    const failure = await end(result);
    if (failure !== undefined && step.done !== true) reportEndError(result, failure);
    return step;
  }

  return(value?: unknown): Promise<IteratorResult<unknown>> {
    return this.results.return?.(value) ?? Promise.resolve({ done: true, value });
  }

  throw(error?: unknown): Promise<IteratorResult<unknown>> {
    return this.results.throw?.(error) ?? Promise.reject(error);
  }
}

/** graphql-ws's `onOperation` hook: may replace the result of the operation it started. */
type OnOperation = (
  ctx: unknown,
  id: unknown,
  payload: unknown,
  args: unknown,
  result: unknown,
) => unknown;

/**
 * Adds to graphql-ws options (`@nestjs/apollo`'s `subscriptions: { 'graphql-ws': graphqlWsUnits() }`,
 * or `graphqlWsUnits({ path, onConnect })`) what resolves each event of a subscription in a unit
 * of work of its own, committed before the event is sent when its result has no errors, rolled
 * back otherwise: an `onOperation` hook (after yours, if `config` has one). Queries and mutations
 * sent over the WebSocket get no unit of their own: send them over HTTP.
 */
export function graphqlWsUnits<T extends object>(config: T = {} as T): T {
  const theirs = (config as { onOperation?: OnOperation }).onOperation;
  const onOperation: OnOperation = async (ctx, id, payload, args, result) => {
    const replaced =
      theirs === undefined ? undefined : await theirs(ctx, id, payload, args, result);
    const operation = (replaced ?? result) as Partial<AsyncIterable<unknown>> | null;
    if (typeof operation?.[Symbol.asyncIterator] !== 'function') return replaced;
    return new EventUnits(operation[Symbol.asyncIterator]!());
  };
  return { ...config, onOperation };
}
