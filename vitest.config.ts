import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at once even on two cores (vitest's default would be one): most of the time a
    // file waits on Node-RED, brokers and browsers, not on the CPU; timing goals live in bench/.
    maxWorkers: 2,
  },
});
