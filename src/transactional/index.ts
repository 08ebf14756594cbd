export * from './propagation.enum.js';
export * from './transactional.decorator.js';
