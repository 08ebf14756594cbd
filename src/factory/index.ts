export * from './session-factory.js';
export * from './session.js';
