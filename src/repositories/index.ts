export * from './inject-session.decorator.js';
export type { EntityClassOrSchema } from './repository.providers.js';
