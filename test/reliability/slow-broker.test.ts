// Scenario 12: a slow but healthy broker. The worker reaches RabbitMQ through a link throttled to 256 KiB/s, so a
// batch of 500 messages of 1 KiB cannot be confirmed within the 1.5 s publish timeout. Before the batch limit adapted,
// every batch timed out, rolled back and was published again, forever (some of its messages reaching the consumer
// every time). Now each timed-out batch halves the limit until batches fit; the row records how many batches timed
// out and the duplicates they cost: the bound on duplicates is the rows of those few batches.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { startThrottledProxy } from "../support/tcp-proxy.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();
const MESSAGES = h.size(2_000, 10_000);
const BYTES_PER_SECOND = 256 * 1024;

it(
  `12. ${MESSAGES} messages of 1 KiB through a 256 KiB/s link with a 1.5 s publish timeout: the batch limit adapts, no republish loop`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.slow"));
    defer(() => consumer.close());
    const broker = new URL(amqpUrl);
    const throttle = await startThrottledProxy(
      { targetHost: broker.hostname, targetPort: Number(broker.port || 5672) },
      BYTES_PER_SECOND,
    );
    defer(() => throttle.close());
    const filler = "x".repeat(1_000);
    // Written before the worker starts: a backlog, so the first batches are full ones (500).
    const ids: string[] = [];
    for (let start = 0; start < MESSAGES; start += 500) {
      ids.push(
        ...(await prisma.$enqueue(
          Array.from({ length: Math.min(500, MESSAGES - start) }, (_, j) => ({
            exchange: consumer.exchange,
            routingKey: "rel.slow",
            payload: { i: start + j, writtenAt: Date.now(), filler },
          })),
        )),
      );
    }
    const worker = await h.startWorker({
      databaseUrl: url,
      amqpUrl: throttle.url(amqpUrl),
      env: { OUTBOX_PUBLISH_TIMEOUT_MS: "1500", OUTBOX_BATCH_SIZE: "500" },
    });
    await h.waitForDelivery(pool, consumer, ids, 120_000, 500);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    const stats = h.stoppedStats(worker)!;
    const timeouts = worker.countLines(/publish timed out: batch limit lowered/);
    const result = h.computeRow(
      "12. slow broker (256 KiB/s link, 1.5 s timeout)",
      ids,
      consumer,
      `${stats.failedBatches} batches timed out (limit 500 -> ${stats.batchLimit}), then none`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    // The limit came down and stayed there: a few halvings, each failing at most the batches in flight then (two
    // drain loops and the sweeper), not one batch per publishTimeoutMs for as long as the backlog lasts.
    expect(stats.batchLimit).toBeLessThan(500);
    expect(timeouts).toBeGreaterThan(0);
    expect(timeouts).toBeLessThanOrEqual(4);
    expect(stats.failedBatches).toBeLessThanOrEqual(3 * timeouts);
    // Duplicates come only from those batches.
    expect(result.duplicates).toBeLessThanOrEqual(stats.failedBatches! * 500);
  },
  h.TEST_TIMEOUT,
);
