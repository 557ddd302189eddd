// Scenario 1: the relay (a worker process) is SIGKILLed at random moments while it drains, several times, one of
// them deterministically after the broker confirmed a batch and before its COMMIT. A burst is written before each
// worker starts, and each kill comes part-way through that worker's backlog; a new worker starts after each kill.
// Every message must arrive; the republished batches are counted as duplicates.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { startCommitGate } from "./commit-gate.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const MESSAGES = h.size(10_000, 50_000);
const KILLS = h.size(5, 10);
/**
 * Written before each worker starts, so that it always has a backlog to drain (however fast the previous ones
 * were): the gated worker has a batch to COMMIT, and the others are killed part-way through their own backlog.
 */
const BURST = h.size(2_000, 5_000);
/** Small batches: more transactions, so that kills land inside them (claimed, published, confirmed, committing). */
const env = { OUTBOX_BATCH_SIZE: "100", OUTBOX_SWEEP_MIN_AGE_MS: "1000" };

it(
  `SIGKILL ${KILLS} times while draining ${MESSAGES} messages (and a burst per worker): nothing lost, republished batches counted`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.sigkill"));
    defer(() => consumer.close());
    const ids = await h.writeMessages(prisma, { exchange: consumer.exchange, count: MESSAGES });

    // The kill after the confirms and before COMMIT comes at a random place among the others.
    const gatedKill = h.randomInt(0, KILLS - 1);
    const kills: string[] = [];
    let held: string[] = [];
    /** Kills, besides the gated one, after which the outbox was not empty: the worker had not finished. */
    let midDrain = 0;

    for (let k = 0; k < KILLS; k++) {
      ids.push(...(await h.writeMessages(prisma, { exchange: consumer.exchange, count: BURST, from: ids.length })));
      if (k === gatedKill) {
        const gate = await startCommitGate("127.0.0.1", Number(new URL(url).port || 5432));
        defer(() => gate.close());
        const holding = gate.arm();
        const worker = await h.startWorker({ databaseUrl: gate.url(url), amqpUrl, env, name: `gated-${k}` });
        const commit = await Promise.race([
          holding,
          h.sleep(30_000).then(() => {
            throw new Error("the gated worker never sent a COMMIT for a non-empty batch");
          }),
        ]);
        const exit = await h.killProc(worker, "SIGKILL");
        expect(exit.signal).toBe("SIGKILL");
        held = commit.messageIds;
        // Its connections are gone, so the open transaction rolled back: the rows are back in the outbox...
        await h.waitForNoRelayBackends(pool);
        expect(await h.inOutbox(pool, held)).toBe(held.length);
        // ...although the broker had confirmed every one of them (RabbitMQ confirms a routed persistent message once
        // its queue has it): the consumer gets them all.
        await h.waitUntil(
          () => held.every((id) => consumer.counts.has(id)),
          "the held batch's messages to reach the consumer",
          10_000,
        );
        kills.push(`after confirm, before COMMIT (${held.length} messages held)`);
        continue;
      }
      // The kill comes when this worker has published a random share of the backlog it started with (arrivals count
      // republished messages too), plus a random few milliseconds.
      const backlog = await h.outboxCount(pool);
      const arrivalsBefore = consumer.arrivals.length;
      const target = Math.floor((0.05 + Math.random() * 0.55) * backlog);
      const worker = await h.startWorker({ databaseUrl: url, amqpUrl, env, name: `worker-${k}` });
      await h.waitUntil(
        () => consumer.arrivals.length - arrivalsBefore >= target || !worker.running,
        `${target} of ${backlog} messages published by worker-${k}`,
        60_000,
        5,
      );
      await h.sleep(h.randomInt(0, 40));
      const published = consumer.arrivals.length - arrivalsBefore;
      const exit = await h.killProc(worker, "SIGKILL");
      expect(exit.signal, `worker ${k} was expected to be alive until killed:\n${worker.log()}`).toBe("SIGKILL");
      // Once its transactions have rolled back, what is left shows whether it was killed mid-drain.
      await h.waitForNoRelayBackends(pool);
      const left = await h.outboxCount(pool);
      if (left > 0) midDrain++;
      kills.push(`after ~${published}/${backlog} published, ${left} left`);
    }

    // The last worker, never killed, delivers the rest.
    const last = await h.startWorker({ databaseUrl: url, amqpUrl, env, name: "final" });
    await h.waitForDelivery(pool, consumer, ids, 120_000);
    expect((await h.killProc(last, "SIGTERM")).code).toBe(0);

    const result = h.computeRow(
      "1. relay SIGKILLed while draining",
      ids,
      consumer,
      `${KILLS} kills: 1 after confirm/before COMMIT (${held.length} held, all republished), ${midDrain}/${KILLS - 1} others mid-drain`,
    );
    h.recordRow(result);
    console.log(`kills: ${kills.join("; ")}`);
    h.expectNoLoss(result);
    // Every message of the held batch was published twice: once before the kill, once by a later worker.
    expect(held.length).toBeGreaterThan(0);
    expect(held.filter((id) => (consumer.counts.get(id) ?? 0) < 2)).toEqual([]);
    expect(result.duplicates).toBeGreaterThanOrEqual(held.length);
    // Not only the gated kill hit a worker with work left: the others are not all kills of an idle worker.
    expect(midDrain, kills.join("; ")).toBeGreaterThanOrEqual(1);
    expect(Number((await pool.query("SELECT count(*) FROM outbox_dead_letter")).rows[0].count)).toBe(0);
  },
  h.TEST_TIMEOUT,
);
