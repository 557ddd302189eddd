// Scenario 8: graceful stop under load. A worker is sent SIGTERM while it drains: it finishes (or, past its deadline,
// aborts) the batches in flight, exits 0 within OUTBOX_STOP_TIMEOUT_MS (plus slack), and a restarted worker delivers
// the rest: nothing lost, and no duplicate, since a graceful stop commits or rolls back before it exits.
import { afterAll, expect, inject, it } from "vitest";
import { outbox } from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import {
  computeRow,
  expectNoLoss,
  killProc,
  newPool,
  outboxCount,
  randomInt,
  recordRow,
  size,
  sleep,
  startWorker,
  stoppedStats,
  TEST_TIMEOUT,
  useProcessCleanup,
  waitForDelivery,
  waitUntil,
  writeMessages,
} from "./harness.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const prisma = base.$extends(outbox({ queue: false }));
const { defer } = useProcessCleanup();
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

const MESSAGES = size(10_000, 50_000);
const STOPS = size(2, 6);
const STOP_TIMEOUT_MS = 3_000;
/** Exit after the deadline: closing connections, the CLI's own exit. Generous, for shared cores. */
const EXIT_SLACK_MS = 3_000;
const env = { OUTBOX_BATCH_SIZE: "100", OUTBOX_STOP_TIMEOUT_MS: String(STOP_TIMEOUT_MS) };
/**
 * When batches cannot finish (a broker that does not answer), stop() aborts them at the deadline and then waits up to
 * 5 s more (STOP_GRACE_MS in src/relay/relay.ts, documented with stopTimeoutMs) for them and the connections to
 * close; the CLI exits as soon as stop() resolved.
 */
const HUNG_STOP_GRACE_MS = 5_000;

it(
  `SIGTERM ${STOPS} times while draining ${MESSAGES} messages: exits 0 within the deadline, the next worker delivers the rest`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.stop"));
    defer(() => consumer.close());
    const ids = await writeMessages(prisma, { exchange: consumer.exchange, count: MESSAGES });
    const stops: string[] = [];
    let longestStopMs = 0;
    for (let k = 0; k < STOPS; k++) {
      const worker = await startWorker({ databaseUrl: url, amqpUrl, env, name: `worker-${k}` });
      const target = Math.floor(((k + 0.2 + Math.random() * 0.5) / (STOPS + 1)) * MESSAGES);
      await waitUntil(() => consumer.distinct >= target, `${target} messages delivered`, 60_000, 5);
      await sleep(randomInt(0, 20));
      const signalledAt = Date.now();
      const exit = await killProc(worker, "SIGTERM");
      const tookMs = exit.at - signalledAt;
      longestStopMs = Math.max(longestStopMs, tookMs);
      expect(exit.code, worker.log()).toBe(0);
      expect(tookMs, worker.log()).toBeLessThanOrEqual(STOP_TIMEOUT_MS + EXIT_SLACK_MS);
      expect(worker.lines.some((l) => l.includes("relay stopped"))).toBe(true);
      // It stopped mid-drain...
      const left = await outboxCount(pool);
      expect(left).toBeGreaterThan(0);
      // ...and every row that left the outbox was delivered, once: batches in flight were finished, not dropped.
      await waitUntil(
        () => consumer.distinct === MESSAGES - left,
        () => `${MESSAGES - left} delivered, got ${consumer.distinct}`,
        10_000,
      );
      expect(consumer.duplicates).toBe(0);
      stops.push(`${tookMs} ms with ${left} left`);
    }
    const last = await startWorker({ databaseUrl: url, amqpUrl, env, name: "final" });
    await waitForDelivery(pool, consumer, ids, 60_000);
    expect((await killProc(last, "SIGTERM")).code).toBe(0);

    const result = computeRow(
      "8. graceful stop (SIGTERM) under load",
      ids,
      consumer,
      `${STOPS} stops, longest ${longestStopMs} ms (deadline ${STOP_TIMEOUT_MS} ms)`,
    );
    recordRow(result);
    console.log(`stops: ${stops.join("; ")}`);
    expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  TEST_TIMEOUT,
);

it(
  "SIGTERM while the broker does not answer: batches in flight are aborted at the deadline and rolled back, exit 0",
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.stop.hung"));
    defer(() => consumer.close());
    const broker = new URL(amqpUrl);
    const proxy = await startTcpProxy({ targetHost: broker.hostname, targetPort: Number(broker.port || 5672) });
    defer(() => proxy.close());
    const count = size(5_000, 20_000);
    const ids = await writeMessages(prisma, { exchange: consumer.exchange, count });
    const worker = await startWorker({ databaseUrl: url, amqpUrl: proxy.url(amqpUrl), env, name: "hung" });
    await waitUntil(() => consumer.distinct >= count / 5, "some messages delivered", 60_000, 5);
    // The broker stops answering (no reset, as a dead network): the batches in flight wait for confirms.
    proxy.blackhole();
    await sleep(200);
    const signalledAt = Date.now();
    const exit = await killProc(worker, "SIGTERM");
    const tookMs = exit.at - signalledAt;
    console.log(`stop with the broker hung took ${tookMs} ms (deadline ${STOP_TIMEOUT_MS} ms)`);
    expect(exit.code, worker.log()).toBe(0);
    proxy.restore();
    // It waited for the deadline, then aborted the batches that could not finish; they rolled back.
    expect(tookMs).toBeGreaterThanOrEqual(STOP_TIMEOUT_MS - 100);
    expect(stoppedStats(worker)?.failedBatches, worker.log()).toBeGreaterThan(0);
    const left = await outboxCount(pool);
    expect(left).toBeGreaterThan(0);

    const last = await startWorker({ databaseUrl: url, amqpUrl, env, name: "final" });
    await waitForDelivery(pool, consumer, ids, 60_000);
    expect((await killProc(last, "SIGTERM")).code).toBe(0);
    const result = computeRow(
      "8b. graceful stop with the broker hung",
      ids,
      consumer,
      `stop took ${tookMs} ms (deadline ${STOP_TIMEOUT_MS} ms + grace)`,
    );
    recordRow(result);
    expectNoLoss(result);
    expect(tookMs, worker.log()).toBeLessThanOrEqual(STOP_TIMEOUT_MS + HUNG_STOP_GRACE_MS + EXIT_SLACK_MS);
  },
  TEST_TIMEOUT,
);
