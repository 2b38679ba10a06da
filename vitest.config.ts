import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration and interop tests start real processes and share host resources
    // (cgroups, /run/systemd/userdb); run files one at a time to keep them independent.
    fileParallelism: false,
    // berthds started by tests stay off any system bus (the reference machined's, in the differential
    // tests) unless a test asks for D-Bus with --dbus.
    env: { BERTH_DBUS: 'no' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/helpers/skip-reporter.ts'],
  },
});
