export * from './auto-commit.interceptor.js';
