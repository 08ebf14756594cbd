export * from './test-transaction.js';
export { TestTransactionError } from '../errors/test-transaction.error.js';
