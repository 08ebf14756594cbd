export * from './session-context.middleware.js';
