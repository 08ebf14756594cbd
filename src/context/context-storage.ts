import { AsyncLocalStorage } from 'node:async_hooks';
import type { ContextFrame } from './context-frame.js';

/** The one AsyncLocalStorage of the library: it carries the current `ContextFrame`. */
export const contextStorage = new AsyncLocalStorage<ContextFrame>();
