// Scenario 5: four workers at once on one outbox, no faults: every message arrives exactly once, and the workers'
// own counts of what they published add up to the number of messages.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const WORKERS = 4;
const MESSAGES = h.size(20_000, 100_000);

it(
  `${WORKERS} workers on ${MESSAGES} messages, no faults: none lost, none duplicated`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.four"));
    defer(() => consumer.close());
    const workers = await Promise.all(
      Array.from({ length: WORKERS }, (_, i) =>
        h.startWorker({ databaseUrl: url, amqpUrl, env: { OUTBOX_BATCH_SIZE: "200" }, name: `worker-${i}` }),
      ),
    );
    // Written while they run, in transactions of 250: each commit's NOTIFY wakes all four.
    const ids = await h.writeMessages(prisma, { exchange: consumer.exchange, count: MESSAGES, chunk: 250 });
    await h.waitForDelivery(pool, consumer, ids, 120_000);

    const exits = await Promise.all(workers.map((w) => h.killProc(w, "SIGTERM")));
    expect(exits.map((e) => e.code)).toEqual(workers.map(() => 0));
    const published = workers.map((w) => h.stoppedStats(w)?.published ?? Number.NaN);

    const result = h.computeRow(
      `5. ${WORKERS} relays at once, no faults`,
      ids,
      consumer,
      `published per worker: ${published.join("/")}`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    // Each message was published by exactly one of them, once.
    expect(published.reduce((a, b) => a + b, 0)).toBe(MESSAGES);
    // The work was shared.
    expect(published.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  },
  h.TEST_TIMEOUT,
);
