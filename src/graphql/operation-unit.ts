import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { unitChannel } from '../diagnostics/channels.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import { type JoinedHandler, UnitOfWork, type UnitOperation } from '../context/unit-of-work.js';
import type { ResolvedModuleOptions } from '../typeorm-context.options.js';
import { messages } from '../errors/messages.js';
import { reportError } from '../logger.js';

/** The part of a GraphQL result (`{ data, errors }`) that decides how its unit ends. */
export interface OperationResult {
  data?: unknown;
  errors?: readonly unknown[] | null;
}

/**
 * Ends one operation with its result (undefined: it failed before it had one); resolves with the
 * error its response must carry when the unit failed to end (a failed COMMIT), else undefined.
 * Calling it again returns the same end.
 */
export type OperationEnd = (result: OperationResult | undefined) => Promise<unknown>;

/**
 * Owns the end of a unit of work that GraphQL resolvers share: an HTTP request's, whose
 * operations (one, or the operations of one batch) run in the request's context, or one event of
 * a subscription's. The driver's hooks start each operation before it executes (`start()`) and
 * end it once its response is ready; the last one to end ends the unit: committed when no
 * operation had errors (with `commitPartial`, when none lacks data) and a handler wanted it,
 * rolled back otherwise. The resolvers' interceptors join it instead of ending it.
 */
export class OperationUnit implements UnitOperation {
  joined = false;
  private handler?: JoinedHandler;
  private running = 0;
  private failed = false;
  private ending?: Promise<unknown>;
  private release?: (failure: unknown) => void;

  private constructor(private readonly unit: UnitOfWork) {}

  /** Records the first resolver's interceptor: its `shouldCommit()` and `onError()` apply. */
  join(handler: JoinedHandler): void {
    this.joined = true;
    this.handler = handler;
  }

  /**
   * Starts an operation in the unit of the HTTP request current here (taking the unit on the
   * first one); undefined where there is none to take (no request, another owner, `graphql: false`).
   */
  static start(runtime: SessionRuntime): OperationEnd | undefined {
    if (runtime.options.graphql === false) return undefined;
    const unit = runtime.frame()?.unit;
    if (unit === undefined || unit.ended || !unit.forRequest) return undefined;
    let owner = unit.operation;
    if (owner === undefined) {
      if (unit.claimed) return undefined; // a handler's interceptor ends it
      owner = OperationUnit.own(unit);
    }
    if (!(owner instanceof OperationUnit) || owner.ending !== undefined) return undefined;
    return owner.begin();
  }

  /**
   * Names the operation of the unit current here on the `unit` channel (`route`: `query GetUser`),
   * once the driver parsed it; nothing when nobody listens.
   */
  static nameOperation(operation: string | undefined, name: string | undefined | null): void {
    if (!unitChannel.hasSubscribers || operation === undefined) return;
    const unit = contextStorage.getStore()?.unit;
    if (unit?.operation !== undefined)
      unit.nameHandler(undefined, `${operation} ${name ?? '(anonymous)'}`);
  }

  /**
   * A unit of its own for one event of a subscription, and its end: the unit's app is the first
   * one whose code uses it (the event's resolvers').
   */
  static event(): { frame: ContextFrame; end: OperationEnd } {
    const unit = new UnitOfWork();
    return { frame: ContextFrame.forUnit(unit), end: OperationUnit.own(unit).begin() };
  }

  private static own(unit: UnitOfWork): OperationUnit {
    const owner = new OperationUnit(unit);
    unit.claimed = true;
    unit.setKind('graphql');
    unit.operation = owner;
    return owner;
  }

  private begin(): OperationEnd {
    this.running++;
    let ended: Promise<unknown> | undefined;
    return (result) => (ended ??= this.operationEnded(result));
  }

  private operationEnded(result: OperationResult | undefined): Promise<unknown> {
    const ok =
      result !== undefined &&
      (!result.errors?.length || (this.commitPartial && result.data != null));
    if (!ok) this.failed = true;
    this.ending ??= new Promise((resolve) => (this.release = resolve));
    if (--this.running === 0) void this.end().then(this.release);
    return this.ending;
  }

  /** The options of the unit's app (none yet for an event unit no app has used: it is empty). */
  private get options(): ResolvedModuleOptions | undefined {
    return this.unit.runtime?.options;
  }

  private get commitPartial(): boolean {
    const graphql = this.options?.graphql;
    return graphql !== undefined && graphql !== false && graphql.commitPartial;
  }

  /** Ends the unit; resolves with the error the responses must carry, if it failed to end. */
  private async end(): Promise<unknown> {
    let commit = !this.failed && (this.joined || this.options?.autoCommit !== false);
    let failure: { error: unknown } | undefined;
    try {
      if (commit && this.handler !== undefined) commit = this.handler.shouldCommit();
    } catch (error) {
      failure = { error };
      commit = false;
    }
    try {
      await this.unit.end(commit);
    } catch (error) {
      failure ??= { error };
    }
    if (failure === undefined) return undefined;
    reportError(messages.graphqlEndFailed(), failure.error, this.unit);
    return this.handler === undefined ? failure.error : this.handler.mapError(failure.error);
  }
}
