// The reliability suite (test/reliability): real PostgreSQL and RabbitMQ, worker and app processes killed on purpose.
//   npm run test:reliability        the default size (CI)
//   CHAOS=1 npm run chaos           more messages, more faults
// Files run one at a time: each starts processes of its own, and their timings must not fight for the two cores.
// At the end, test/reliability/global-setup.ts prints one row per scenario and writes them to a JSON file.
import { defineConfig } from "vitest/config";

const chaos = process.env.CHAOS === "1";

export default defineConfig({
  test: {
    include: ["test/reliability/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts", "test/reliability/global-setup.ts"],
    testTimeout: chaos ? 900_000 : 180_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
