import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration and interop tests start real processes and share host resources
    // (cgroups, /run/systemd/userdb); run files one at a time to keep them independent.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/helpers/skip-reporter.ts'],
  },
});
