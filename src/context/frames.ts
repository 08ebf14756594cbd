import type { FrameUnit, SessionFrame, SessionFrames } from '../session/session-frames.js';
import { ContextFrame, OUTSIDE } from './context-frame.js';
import { contextStorage } from './context-storage.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * The context as sessions see it (`SessionHooks.frames`): the one AsyncLocalStorage and its
 * `ContextFrame`s. Every frame a session gets or opens is one of these, so the casts hold.
 */
export const frames: SessionFrames = {
  current: (): SessionFrame | undefined => contextStorage.getStore(),
  run: <T>(frame: SessionFrame, work: () => T): T =>
    contextStorage.run(frame as ContextFrame, work),
  outside: OUTSIDE,
  outsideOf: (app: object, current: SessionFrame | undefined): SessionFrame =>
    ContextFrame.outside(app, current as ContextFrame | undefined),
  after: (unit: FrameUnit): SessionFrame => ContextFrame.after(unit as UnitOfWork),
};
