// Scenario 3: the broker is unreachable for a while mid-stream. A TCP proxy between the worker and RabbitMQ cuts every
// connection and refuses new ones (or silently stops forwarding); writes keep succeeding and the outbox grows; after
// restore() the same worker process recovers by itself and drains everything.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

/**
 * cut: every connection reset and new ones refused (the relay sees it at once). blackhole: nothing forwarded and
 * nothing closed, as a silent network partition; longer than the publish timeout (10 s), so the batches in flight
 * time out and roll back, and their messages, held in the proxy, reach the broker after restore() (duplicates).
 */
const OUTAGES: Array<{ kind: "cut" | "blackhole"; ms: number }> = h.size(
  [
    { kind: "cut", ms: 3_000 },
    { kind: "blackhole", ms: 12_000 },
  ],
  [
    { kind: "cut", ms: 5_000 },
    { kind: "blackhole", ms: 12_000 },
    { kind: "cut", ms: 5_000 },
    { kind: "blackhole", ms: 25_000 },
  ],
);
const FLOW_MS = 1_500;
/** Messages per write (one transaction) of the stream. */
const CHUNK = 20;
const plan = OUTAGES.map((o) => `${o.kind} ${o.ms / 1000} s`).join(", ");

it(
  `broker outages mid-stream (${plan}): writes succeed, the backlog grows, then drains with no restart`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.broker"));
    defer(() => consumer.close());
    const broker = new URL(amqpUrl);
    const proxy = await startTcpProxy({ targetHost: broker.hostname, targetPort: Number(broker.port || 5672) });
    defer(() => proxy.close());
    const worker = await h.startWorker({ databaseUrl: url, amqpUrl: proxy.url(amqpUrl) });

    const writer = h.streamMessages(prisma, { exchange: consumer.exchange, chunk: CHUNK, everyMs: 25 });
    const growth: string[] = [];
    for (const outage of OUTAGES) {
      await h.sleep(FLOW_MS);
      // Flowing: the relay keeps up.
      await h.waitUntil(
        () => writer.ids.slice(0, -100).every((id) => consumer.counts.has(id)),
        "the relay to keep up before the outage",
        30_000,
      );
      // Where the writes stand when the outage begins: the write in progress may have committed before it, but any
      // write after that one starts, and so commits, during the outage.
      let startedAt: number;
      if (outage.kind === "cut") {
        const lost = worker.countLines(/broker connection lost/);
        proxy.cut();
        startedAt = writer.ids.length;
        await worker.waitForLine(/broker connection lost/, 10_000, lost + 1);
      } else {
        proxy.blackhole();
        startedAt = writer.ids.length;
      }
      // Batches in flight at a cut roll back; from here on nothing is committed (in a blackhole, batches may still
      // be claimed, but their rows stay in the table until they commit, which needs the broker's confirms).
      await h.sleep(300);
      const before = await h.outboxCount(pool);
      await h.sleep(outage.ms);
      // The ids first, then the checks: all before restore(), while the outage lasts.
      const during = writer.ids.slice(startedAt + CHUNK);
      expect(during.length).toBeGreaterThan(0);
      // None of the messages written during the outage reached the consumer while it lasted...
      const arrived = during.filter((id) => consumer.counts.has(id));
      expect(arrived.slice(0, 10), `${arrived.length} of ${during.length} arrived during the outage`).toEqual([]);
      // ...and every one of them is still in the outbox: the backlog grew by them.
      expect(await h.inOutbox(pool, during)).toBe(during.length);
      const after = await h.outboxCount(pool);
      growth.push(`${outage.kind} ${before}->${after}`);
      expect(after).toBeGreaterThan(before);
      proxy.restore();
    }
    await h.sleep(FLOW_MS);
    const ids = await writer.stop();
    expect(writer.errors).toEqual([]);

    await h.waitForDelivery(pool, consumer, ids, 60_000);
    // The same process did it all: it reconnected by itself.
    expect(worker.running).toBe(true);
    const cuts = OUTAGES.filter((o) => o.kind === "cut").length;
    expect(worker.countLines(/broker reconnected/)).toBeGreaterThanOrEqual(cuts);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);

    const result = h.computeRow(
      "3. broker unreachable mid-stream",
      ids,
      consumer,
      `outbox during outages: ${growth.join(", ")}`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
  },
  h.TEST_TIMEOUT,
);
