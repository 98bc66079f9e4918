import { defineConfig } from 'vitest/config';

/**
 * One project per test tier. scripts/test runs them one after another; each tier's globalSetup
 * starts the real services it needs and stops them afterwards.
 */
export default defineConfig({
  test: {
    // Every tier runs Berth in local mode, said explicitly: without it a process is in production mode.
    env: { BERTH_MODE: 'local' },
    // Stopping a whole stack (the local cloud waits for its servers) can take longer than the default 10 s.
    teardownTimeout: 120_000,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.{ts,tsx}'],
          setupFiles: ['test/support/no-console-error.ts'],
        },
      },
      {
        test: {
          name: 'workflows',
          include: ['test/workflows/**/*.test.ts'],
          setupFiles: ['test/support/no-console-error.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Each file runs its own Java test server; one at a time keeps a 2-core machine responsive.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'replay',
          include: ['test/replay/**/*.test.ts'],
          setupFiles: ['test/support/no-console-error.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/support/no-console-error.ts'],
          globalSetup: ['test/support/integration-services.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: 'security',
          include: ['test/security/**/*.test.ts'],
          setupFiles: ['test/support/no-console-error.ts'],
          // A whole Berth on free ports, so it can run beside the run command's fixed-port one.
          globalSetup: ['test/support/security-stack.ts'],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'production',
          include: ['test/production/**/*.test.ts'],
          setupFiles: ['test/support/no-console-error.ts'],
          globalSetup: ['test/support/production-stack.ts'],
          testTimeout: 1_800_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          setupFiles: ['test/support/no-console-error.ts'],
          globalSetup: ['test/support/e2e-stack.ts'],
          testTimeout: 120_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
