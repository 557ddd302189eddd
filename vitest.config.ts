import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The reliability suite runs on its own, one file at a time: npm run test:reliability (vitest.reliability.config.ts).
    exclude: ["test/reliability/**", "**/node_modules/**"],
    // The database-free files (*.unit.test.ts) run here too, and alone without servers: npm run test:unit.
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: files run two at a time; each has its own database, exchanges and queues.
    maxWorkers: 2,
  },
});
