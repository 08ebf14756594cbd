export * from './session-context.js';
