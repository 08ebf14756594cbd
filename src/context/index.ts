export * from './session-context.js';
export type { CompletionStatus } from '../session/transaction-callbacks.js';
