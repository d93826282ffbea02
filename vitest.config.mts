import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';
import path from 'node:path';

// SWC compiles tests so NestJS decorators and emitDecoratorMetadata behave as in
// the tsc build; esbuild (vitest's default) drops decorator metadata.
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  resolve: {
    alias: {
      '@ai-platform/contracts': path.resolve(import.meta.dirname, 'libs/contracts/src/index.ts'),
      '@ai-platform/platform': path.resolve(import.meta.dirname, 'libs/platform/src/index.ts'),
      '@ai-platform/pricing': path.resolve(import.meta.dirname, 'libs/pricing/src/index.ts'),
    },
  },
  test: {
    include: ['libs/**/test/**/*.test.ts', 'services/**/test/**/*.test.ts', 'charts/test/**/*.test.ts', 'infra/**/test/**/*.test.ts', 'e2e/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
