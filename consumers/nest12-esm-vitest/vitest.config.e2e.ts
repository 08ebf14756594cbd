import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.e2e-spec.ts'],
    root: './',
  },
  // SWC (not esbuild) so that decorators emit their metadata, which Nest's injection reads.
  plugins: [swc.vite({ module: { type: 'es6' } })],
});
