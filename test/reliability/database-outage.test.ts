// Scenario 4: the relay's database connections are lost, over and over, while it drains: every backend of the
// worker (pool and LISTEN) is terminated with pg_terminate_backend. The same worker process recovers by itself and
// nothing is lost. 4b: the relay's network to PostgreSQL goes silent for a while (a TCP proxy stops forwarding).
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const BACKLOG = h.size(5_000, 20_000);
const ROUNDS = h.size(12, 40);
const EVERY_MS = 300;

it(
  `relay backends terminated ${ROUNDS} times while draining: the worker recovers by itself, nothing lost`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.database"));
    defer(() => consumer.close());
    const backlog = await h.writeMessages(prisma, { exchange: consumer.exchange, count: BACKLOG });
    // Small batches and one drain loop: the backlog lasts through several terminations.
    const worker = await h.startWorker({
      databaseUrl: url,
      amqpUrl,
      env: { OUTBOX_BATCH_SIZE: "50", OUTBOX_CONCURRENCY: "1", OUTBOX_SWEEP_MIN_AGE_MS: "1000" },
    });
    const writer = h.streamMessages(prisma, { exchange: consumer.exchange, chunk: 10, everyMs: 25 });

    let terminated = 0;
    let roundsThatHit = 0;
    let roundsInBatch = 0;
    const bursts: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await h.sleep(EVERY_MS);
      // A burst right before each termination, so that the relay is busy when it loses its connections however
      // fast it drains (Node 24 drains the initial backlog in well under a second); and the termination comes, if
      // it can within a moment, while a batch is open (rows claimed, waiting for confirms): it interrupts that batch.
      bursts.push(
        ...(await h.writeMessages(prisma, { exchange: consumer.exchange, count: 500, from: BACKLOG + round * 500 })),
      );
      const hit = await h.terminateRelayBackendsMidBatch(pool, 2_000);
      terminated += hit.terminated;
      if (hit.terminated > 0) roundsThatHit++;
      if (hit.inBatch > 0) roundsInBatch++;
    }
    const ids = [...backlog, ...bursts, ...(await writer.stop())];
    expect(writer.errors).toEqual([]);

    await h.waitForDelivery(pool, consumer, ids, 90_000);
    expect(worker.running, worker.log()).toBe(true);
    // It connected again (pool and LISTEN) on its own.
    expect(await h.relayBackends(pool)).toBeGreaterThan(0);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    const failedBatches = h.stoppedStats(worker)?.failedBatches;

    const result = h.computeRow(
      "4. relay's DB connections terminated",
      ids,
      consumer,
      `${terminated} backends in ${roundsThatHit}/${ROUNDS} rounds (${roundsInBatch} in a batch); ${failedBatches} batches failed`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    // The faults were real: most rounds found relay connections to terminate, and terminations interrupted batches
    // that had claimed rows (the worker's own count of the batches that failed and rolled back).
    expect(roundsThatHit).toBeGreaterThanOrEqual(Math.ceil(ROUNDS / 2));
    expect(failedBatches, worker.log()).toBeGreaterThan(0);
  },
  h.TEST_TIMEOUT,
);

const PARTITION_MS = h.size(12_000, 25_000);

it(
  `the relay's network to PostgreSQL silently partitioned for ${PARTITION_MS} ms mid-stream: recovers after, nothing lost`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.database.partition"));
    defer(() => consumer.close());
    const db = new URL(url);
    // Only the worker goes through the proxy; the app keeps writing directly.
    const proxy = await startTcpProxy({ targetHost: db.hostname, targetPort: Number(db.port || 5432) });
    defer(() => proxy.close());
    const worker = await h.startWorker({
      databaseUrl: proxy.url(url),
      amqpUrl,
      env: { OUTBOX_BATCH_SIZE: "100", OUTBOX_SWEEP_MIN_AGE_MS: "1000" },
    });
    const writer = h.streamMessages(prisma, { exchange: consumer.exchange, chunk: 20, everyMs: 50 });
    await h.sleep(1_500);
    // Nothing forwarded, nothing closed: the relay's queries (a COMMIT among them, perhaps) hang.
    proxy.blackhole();
    await h.sleep(300);
    const before = await h.outboxCount(pool);
    await h.sleep(PARTITION_MS);
    const after = await h.outboxCount(pool);
    proxy.restore();
    await h.sleep(1_500);
    const ids = await writer.stop();
    expect(writer.errors).toEqual([]);
    expect(after).toBeGreaterThan(before);

    await h.waitForDelivery(pool, consumer, ids, 90_000);
    expect(worker.running, worker.log()).toBe(true);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    const result = h.computeRow(
      "4b. relay's DB network partitioned",
      ids,
      consumer,
      `${PARTITION_MS / 1000} s blackhole; outbox ${before}->${after}`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
  },
  h.TEST_TIMEOUT,
);
