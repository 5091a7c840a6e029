import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'tests/**/*.test.tsx'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // onnxruntime sessions and DuckDB files are heavy: keep workers few on a 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
