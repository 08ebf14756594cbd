import {
  type SavepointMessage,
  savepointChannel,
  traceSavepoint,
} from '../diagnostics/channels.js';
import { dbTarget } from '../diagnostics/db-target.js';
import { inScope } from '../diagnostics/scope.js';
import type { EntityManager, QueryRunner } from 'typeorm';
import { messages } from '../errors/messages.js';
import { SessionContextEndedError } from '../errors/session-context-ended.error.js';
import type { Block } from './block.js';
import type { Lane } from './lane.js';
import type { LazySession } from './lazy-session.js';
import type { QueryArgs, StreamArgs } from './session-connection.js';
import type { SessionFrames } from './session-frames.js';
import { bindCallbacks, bindEvents, type SessionStreams, streamScope } from './session-streams.js';
import type { TransactionWire } from './transaction-wire.js';

const RESOLVED = Promise.resolve();

/**
 * The work one session is given (owned by its `LazySession`): statements, streams and NESTED
 * blocks, each a task of the lane of the code giving it, the transaction begun first if needed.
 */
export class SessionWork {
  constructor(
    private readonly session: LazySession,
    private readonly wire: TransactionWire,
    private readonly streams: SessionStreams,
    private readonly frames: SessionFrames,
  ) {}

  /** The transaction work joins now, begun on the server or not yet. */
  private current(): Block {
    return this.session.currentBlock;
  }

  /** The error of a use after the session ended, if it ended. */
  private ended(): Error | undefined {
    return this.session.endedError();
  }

  /** Runs a statement after the work queued before it, beginning the transaction if needed. */
  query(args: QueryArgs): Promise<unknown> {
    const unit = this.session.unitTrace;
    if (unit !== undefined) return inScope(unit, () => this.queue(args));
    return this.queue(args);
  }

  private queue(args: QueryArgs): Promise<unknown> {
    const lane = this.session.laneHere();
    const block = lane.block;
    if (block === undefined) return lane.run(() => this.statement(args), this.failedInCurrent);
    return lane.run(
      () => this.wire.send(args, block, lane),
      (error) => this.wire.failed(block, error),
    );
  }

  /**
   * Runs `work` on the lane of the code calling, once the transaction is open there (the
   * session's own lane begins it first), with that lane and the block work joins on it.
   */
  inTransaction<T>(work: (lane: Lane, block: Block) => Promise<T>): Promise<T> {
    const lane = this.session.laneHere();
    return lane.run(async () => {
      if (lane.block !== undefined) return work(lane, lane.block);
      await this.begun();
      return work(lane, this.current());
    });
  }

  /** Opens a stream that holds its lane until it closes, and dies with its block or context. */
  stream(args: StreamArgs): ReturnType<QueryRunner['stream']> {
    // Its events, onEnd and onError run in the caller's context, not the connection maker's.
    const scope = streamScope();
    return new Promise((resolve, reject) => {
      void this.inTransaction(async (lane, block) => {
        let stream: Awaited<ReturnType<QueryRunner['stream']>>;
        try {
          stream = bindEvents(await this.wire.stream(bindCallbacks(args, scope), block), scope);
        } catch (error) {
          return reject(error as Error);
        }
        stream.once('error', (error) => {
          // One of a savepoint or hook dies with it: only the transaction's own can reach a response.
          if (lane === this.session.lane) this.session.streamFailure ??= error;
          this.wire.failed(block, error);
        });
        resolve(stream);
        await this.streams.hold(stream, lane);
      }).catch(reject);
    });
  }

  /** Runs `fn` in a SAVEPOINT of the transaction current here, after the work queued before it. */
  nested<T>(fn: (manager: EntityManager) => Promise<T> | T): Promise<T> {
    const ended = this.ended();
    if (ended) return Promise.reject(ended);
    if (!savepointChannel.hasSubscribers) return this.inSavepoint(fn);
    const message: SavepointMessage = {
      dataSource: this.session.dataSourceName,
      db: dbTarget(this.session.dataSource),
    };
    return traceSavepoint(message, () => this.inSavepoint(fn, message));
  }

  private inSavepoint<T>(
    fn: (manager: EntityManager) => Promise<T> | T,
    message?: SavepointMessage,
  ): Promise<T> {
    const frames = this.frames;
    const frame = frames.current() ?? frames.outside;
    return this.inTransaction(async (lane, parent) => {
      const block = await this.wire.savepoints.open(lane, parent);
      if (message) message.savepoint = block.savepoint;
      let result: T;
      try {
        result = await frames.run(frame.within(this.session, block.lane!), () =>
          fn(this.session.manager),
        );
      } catch (error) {
        await this.endSavepoint(block, false);
        throw error;
      }
      await this.endSavepoint(block, true);
      return result;
    });
  }

  private statement(args: QueryArgs): Promise<unknown> {
    if (this.wire.open) return this.wire.send(args, this.current(), this.session.lane);
    return this.begun().then(() => this.wire.send(args, this.current(), this.session.lane));
  }

  /**
   * Resolves once a transaction is open (call it from a task of the session's own lane). A
   * transaction whose connection was lost is not begun again: it is over until its commit or
   * rollback says so.
   */
  private begun(): Promise<void> {
    if (this.wire.open) return RESOLVED;
    const refused = this.ended() ?? this.current().broken;
    if (refused) return Promise.reject(refused);
    return this.wire.begin(this.session.lane, this.current());
  }

  private endSavepoint(block: Block, keep: boolean): Promise<void> {
    const error = () =>
      new SessionContextEndedError(messages.blockEnded(this.session.dataSourceName));
    this.streams.destroy(error, (lane) => lane === block.lane);
    return this.wire.savepoints.end(block, keep);
  }

  private readonly failedInCurrent = (error: unknown): Error | undefined =>
    this.wire.failed(this.current(), error);
}
