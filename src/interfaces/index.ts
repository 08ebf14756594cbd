export * from './transaction-options.interface.js';
export * from './typeorm-context-options.interface.js';
