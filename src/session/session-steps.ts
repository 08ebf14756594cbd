import type { Block } from './block.js';
import { Lane } from './lane.js';
import type { LazySession } from './lazy-session.js';
import type { SessionConnection, TransactionEvent } from './session-connection.js';
import type { SessionFrame, SessionFrames } from './session-frames.js';

const RESOLVED = Promise.resolve();

/**
 * Work that runs inside one of a session's tasks and may use the session itself: the module
 * hooks and TypeORM's transaction events (whose subscribers may query through `event.manager` or
 * `event.queryRunner`). A step gets a lane of its own, so what it sends never waits for the task
 * it is part of, and the task goes on only once the step's work has run.
 */
export class SessionSteps {
  constructor(
    private readonly session: LazySession,
    private readonly connection: SessionConnection,
    private readonly frames: SessionFrames,
  ) {}

  /** Broadcasts a TypeORM transaction event, when anyone listens, as a step of the task on `lane`. */
  event(lane: Lane, block: Block, event: TransactionEvent): Promise<void> {
    if (!this.connection.observed) return RESOLVED;
    return this.run(lane, block, () => this.connection.broadcast(event));
  }

  /**
   * Runs `work` as part of the task running on `parent`, for statements of `block`. There
   * `sessionContext.session()` of the session's data source is this session, whoever's code
   * (another context's, or none) made the statement, commit or close that runs it.
   */
  async run<T>(parent: Lane, block: Block, work: () => Promise<T> | T): Promise<T> {
    const lane = new Lane(parent, block, true);
    const session = this.session;
    const frames = this.frames;
    const current = frames.current();
    const frame = hookFrame(frames, session.app, current)
      .with(session.dataSourceName, session, current)
      .within(session, lane);
    try {
      return await frames.run(frame, work);
    } finally {
      await lane.close();
    }
  }
}

/**
 * The frame a step of a session of `app` runs in, opened in `current`: the app's own frame found
 * there (its context), or one of the app outside any context of it. Never another app's frame:
 * another app's code in the step keeps to its own context.
 */
function hookFrame(
  frames: SessionFrames,
  app: object,
  current: SessionFrame | undefined,
): SessionFrame {
  return current?.ownedBy(app) ?? frames.outsideOf(app, current);
}
