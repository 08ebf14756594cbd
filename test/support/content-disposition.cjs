// Jest on Node 20 cannot require() an ES module, and @fastify/static (loaded by mercurius) requires
// content-disposition 3, which is ESM only. Under Jest, every require of it gets version 2 (the
// one express 5 uses, CommonJS) with version 3's `create` name for the same function.
const { createRequire } = require('node:module');
const fromExpress = createRequire(require.resolve('express'));
const contentDisposition = fromExpress('content-disposition');
module.exports = Object.assign((...args) => contentDisposition(...args), {
  create: contentDisposition,
  parse: contentDisposition.parse,
});
