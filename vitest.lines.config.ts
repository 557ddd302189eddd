// What CI runs on the supported Node.js lines other than the main one (.ci/run): the whole suite runs on the main
// line (24); on 22 and 26 what a Node.js line can change is the runtime our code calls (AbortSignal and its listeners,
// timers, signals and process events, the http server and fetch, ESM subpath exports, the pg and amqplib sockets), so
// these run: every database-free test, and the integration files that drive each part end to end through those APIs.
// The whole suite on each line cost CI some 11 minutes of its 30; `vitest run` on a line still runs it all.
import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

// Spread, not mergeConfig: mergeConfig concatenates arrays, and the base's include would take every file again.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      "test/**/*.unit.test.ts",
      "test/extension/outbox.test.ts",
      "test/relay/relay.test.ts",
      "test/relay/listen.test.ts",
      "test/relay/start-stop.test.ts",
      "test/transport/amqp.test.ts",
      "test/inbox/inbox.test.ts",
      "test/inbox/receiver.test.ts",
      "test/inbox/partitions.test.ts",
      "test/request-reply/requests.test.ts",
      "test/request-reply/http.test.ts",
      "test/testing/subpath.test.ts",
      "test/testing/clock.test.ts",
      "test/cli/worker.test.ts",
      "test/cli/metrics-endpoints.test.ts",
      "test/telemetry/tracing.test.ts",
      "test/prisma/lost-connection.test.ts",
    ],
  },
});
