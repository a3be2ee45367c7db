// One suite, three layers: unit (pure), integration (real Redis, Postgres, SMTP and
// processes), e2e (a real browser). `npm test` builds first: process tests run dist/.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2 cores: integration files start processes of their own.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
