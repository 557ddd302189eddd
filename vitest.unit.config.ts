// The database-free tests (`*.unit.test.ts`, beside the others in the folder that mirrors src/): no PostgreSQL, no
// RabbitMQ, no global setup. `npm run test:unit` runs them on a machine without servers; `npm test` runs them too.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.unit.test.ts"],
    testTimeout: 60_000,
    maxWorkers: 2,
  },
});
