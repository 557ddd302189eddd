// Scenario 8: graceful stop under load. A worker is sent SIGTERM while it drains, with batches provably in flight (a
// proxy holds the broker's traffic until the worker has begun to stop) and rows not yet claimed: it finishes the
// batches in flight, claims nothing more, exits 0 within OUTBOX_STOP_TIMEOUT_MS (plus slack), and a restarted worker
// delivers the rest: nothing lost, and no duplicate, since a graceful stop commits or rolls back before it exits.
// 8b: the broker never answers, so the batches in flight reach the deadline: aborted, rolled back, exit 0.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const MESSAGES = h.size(10_000, 50_000);
const STOPS = h.size(2, 6);
/** Exit after the deadline: closing connections, the CLI's own exit. Generous, for shared cores. */
const EXIT_SLACK_MS = 3_000;
/**
 * Written while the broker is held, just before a SIGTERM: more than a worker can have claimed at once (2 drain loops
 * and the sweeper, OUTBOX_BATCH_SIZE each), so that rows are provably left unclaimed when it stops.
 */
const BURST = 1_000;
const BATCH_SIZE = 100;

it(
  `SIGTERM ${STOPS} times while draining ${MESSAGES} messages: exits 0 within the deadline, the next worker delivers the rest`,
  async () => {
    /** Long enough that these stops never reach it: every batch in flight is finished, none aborted. */
    const stopTimeoutMs = 15_000;
    const env = { OUTBOX_BATCH_SIZE: String(BATCH_SIZE), OUTBOX_STOP_TIMEOUT_MS: String(stopTimeoutMs) };
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.stop"));
    defer(() => consumer.close());
    // The workers reach the broker through a proxy that can hold their traffic: a batch provably in flight.
    const broker = new URL(amqpUrl);
    const proxy = await startTcpProxy({ targetHost: broker.hostname, targetPort: Number(broker.port || 5672) });
    defer(() => proxy.close());
    const ids = await h.writeMessages(prisma, { exchange: consumer.exchange, count: MESSAGES });
    const stops: string[] = [];
    let longestStopMs = 0;
    for (let k = 0; k < STOPS; k++) {
      const worker = await h.startWorker({ databaseUrl: url, amqpUrl: proxy.url(amqpUrl), env, name: `worker-${k}` });
      const target = Math.floor(((k + 0.2 + Math.random() * 0.5) / (STOPS + 1)) * MESSAGES);
      await h.waitUntil(() => consumer.distinct >= target, `${target} messages delivered`, 60_000, 5);
      await h.sleep(h.randomInt(0, 20));
      // However fast it drains, the SIGTERM comes with batches in flight and rows waiting: the broker's traffic is
      // held (its confirms cannot come), a burst is written, and a claimed batch is seen open.
      proxy.blackhole();
      ids.push(...(await h.writeMessages(prisma, { exchange: consumer.exchange, count: BURST, from: ids.length })));
      await h.waitForOpenRelayBatch(pool);
      const signalledAt = Date.now();
      worker.kill("SIGTERM");
      // Once it has begun to stop (it claims nothing more), the broker answers again: the batches in flight finish.
      await worker.waitForLine(/stopping/, 10_000);
      proxy.restore();
      const exit = await worker.exited;
      const tookMs = exit.at - signalledAt;
      longestStopMs = Math.max(longestStopMs, tookMs);
      expect(exit.code, worker.log()).toBe(0);
      expect(tookMs, worker.log()).toBeLessThanOrEqual(stopTimeoutMs + EXIT_SLACK_MS);
      const stats = h.stoppedStats(worker);
      expect(stats, worker.log()).toBeDefined();
      // No batch reached the deadline: every one in flight was finished (committed), none aborted.
      expect(stats?.failedBatches, worker.log()).toBe(0);
      // It stopped mid-drain (the burst is larger than what it can have claimed)...
      const left = await h.outboxCount(pool);
      expect(left).toBeGreaterThan(0);
      // ...and every row that left the outbox was delivered, once: batches in flight were finished, not dropped.
      await h.waitUntil(
        () => consumer.distinct === ids.length - left,
        () => `${ids.length - left} delivered, got ${consumer.distinct}`,
        10_000,
      );
      expect(consumer.duplicates).toBe(0);
      stops.push(`${tookMs} ms with ${left} left`);
    }
    const last = await h.startWorker({ databaseUrl: url, amqpUrl, env, name: "final" });
    await h.waitForDelivery(pool, consumer, ids, 60_000);
    expect((await h.killProc(last, "SIGTERM")).code).toBe(0);

    const result = h.computeRow(
      "8. graceful stop (SIGTERM) under load",
      ids,
      consumer,
      `${STOPS} stops with batches in flight, longest ${longestStopMs} ms (deadline ${stopTimeoutMs} ms), none aborted`,
    );
    h.recordRow(result);
    console.log(`stops: ${stops.join("; ")}`);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);

/**
 * When batches cannot finish (a broker that does not answer), stop() aborts them at the deadline and then waits up to
 * 5 s more (STOP_GRACE_MS in src/relay/relay.ts, documented with stopTimeoutMs) for them and the connections to
 * close; the CLI exits as soon as stop() resolved.
 */
const HUNG_STOP_GRACE_MS = 5_000;

it(
  "SIGTERM while the broker does not answer: batches in flight are aborted at the deadline and rolled back, exit 0",
  async () => {
    const stopTimeoutMs = 3_000;
    const env = { OUTBOX_BATCH_SIZE: String(BATCH_SIZE), OUTBOX_STOP_TIMEOUT_MS: String(stopTimeoutMs) };
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.stop.hung"));
    defer(() => consumer.close());
    const broker = new URL(amqpUrl);
    const proxy = await startTcpProxy({ targetHost: broker.hostname, targetPort: Number(broker.port || 5672) });
    defer(() => proxy.close());
    const count = h.size(5_000, 20_000);
    const ids = await h.writeMessages(prisma, { exchange: consumer.exchange, count });
    const worker = await h.startWorker({ databaseUrl: url, amqpUrl: proxy.url(amqpUrl), env, name: "hung" });
    await h.waitUntil(() => consumer.distinct >= count / 5, "some messages delivered", 60_000, 5);
    // The broker stops answering (no reset, as a dead network); then messages come, and a batch of them is claimed
    // and published: it waits for confirms that cannot come.
    proxy.blackhole();
    const burst = await h.writeMessages(prisma, { exchange: consumer.exchange, count: BURST, from: count });
    ids.push(...burst);
    await h.waitForOpenRelayBatch(pool);
    const signalledAt = Date.now();
    const exit = await h.killProc(worker, "SIGTERM");
    const tookMs = exit.at - signalledAt;
    console.log(`stop with the broker hung took ${tookMs} ms (deadline ${stopTimeoutMs} ms)`);
    expect(exit.code, worker.log()).toBe(0);
    proxy.restore();
    // It waited for the deadline, then aborted the batches that could not finish; they rolled back: every message
    // written while the broker was silent is in the outbox again.
    expect(tookMs).toBeGreaterThanOrEqual(stopTimeoutMs - 100);
    expect(h.stoppedStats(worker)?.failedBatches, worker.log()).toBeGreaterThan(0);
    expect(await h.inOutbox(pool, burst)).toBe(burst.length);

    const last = await h.startWorker({ databaseUrl: url, amqpUrl, env, name: "final" });
    await h.waitForDelivery(pool, consumer, ids, 60_000);
    expect((await h.killProc(last, "SIGTERM")).code).toBe(0);
    const result = h.computeRow(
      "8b. graceful stop with the broker hung",
      ids,
      consumer,
      `stop took ${tookMs} ms (deadline ${stopTimeoutMs} ms + grace)`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(tookMs, worker.log()).toBeLessThanOrEqual(stopTimeoutMs + HUNG_STOP_GRACE_MS + EXIT_SLACK_MS);
  },
  h.TEST_TIMEOUT,
);
