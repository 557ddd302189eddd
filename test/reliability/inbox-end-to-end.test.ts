// Inbox scenario I7, end to end: the app writes outbox messages with its Prisma client, a relay worker publishes them,
// RabbitMQ routes them to the inbox's queue, and an inbox worker runs the handler, which writes one Effect row. The
// relay worker and the inbox worker are each SIGKILLed mid-stream (and started again). Every committed outbox message
// must have exactly one handler effect: the relay's duplicates after its kill are the inbox's to absorb.
import { expect, it } from "vitest";
import * as h from "./harness.js";
import * as ih from "./inbox-harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const ROUNDS = h.size(1, 4);
const FLOW_MS = h.size(1_200, 2_000);

it(
  `I7. app -> outbox -> relay -> RabbitMQ -> inbox -> handler, relay and inbox each SIGKILLed ${ROUNDS} times: one effect per committed message`,
  async () => {
    // The exchange and the inbox's queue (bound with '#'); the publisher itself is not used: the relay publishes.
    const broker = await ih.startPublisher(amqpUrl, "rel.inbox.e2e");
    defer(() => broker.close());
    const relayEnv = { OUTBOX_BATCH_SIZE: "100", OUTBOX_SWEEP_MIN_AGE_MS: "1000" };
    const inboxEnv = { INBOX_HANDLER_TIMEOUT_MS: "1000", INBOX_SWEEP_INTERVAL_MS: "100" };
    const startRelay = (name: string) => h.startWorker({ databaseUrl: url, amqpUrl, env: relayEnv, name });
    const startConsumer = (name: string) =>
      ih.startInbox({ ...broker, databaseUrl: url, amqpUrl, env: inboxEnv, name });
    let relay = await startRelay("relay-0");
    let consumer = await startConsumer("inbox-0");
    const writer = h.streamMessages(prisma, { exchange: broker.exchange, chunk: 10, everyMs: 25 });
    const kills: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await h.sleep(FLOW_MS);
      // The relay, while it publishes the stream (the outbox is written to all the time).
      expect((await h.killProc(relay, "SIGKILL")).signal).toBe("SIGKILL");
      kills.push(`relay killed with ${await h.outboxCount(pool)} in the outbox`);
      await h.sleep(200);
      relay = await startRelay(`relay-${round + 1}`);
      await h.sleep(FLOW_MS);
      // The inbox worker, while it handles the stream.
      const before = await ih.effectCount(pool);
      await h.waitUntil(async () => (await ih.effectCount(pool)) > before, "the inbox to be handling", 10_000, 5);
      expect((await h.killProc(consumer, "SIGKILL")).signal).toBe("SIGKILL");
      await h.waitUntil(async () => (await ih.inboxBackends(pool)) === 0, "the killed inbox's connections to end");
      kills.push(`inbox killed with ${(await ih.inboxStatuses(pool)).pending ?? 0} rows pending`);
      consumer = await startConsumer(`inbox-${round + 1}`);
    }
    await h.sleep(FLOW_MS);
    const ids = await writer.stop();
    expect(writer.errors).toEqual([]);
    // Rows the killed inbox had claimed wait out their lease (handlerTimeoutMs + 15 s).
    await ih.waitForEffects(pool, ids, { timeoutMs: 90_000 });
    expect(await h.outboxCount(pool)).toBe(0);
    const stats = ih.inboxStats(consumer);
    expect((await h.killProc(relay, "SIGTERM")).code).toBe(0);
    expect((await h.killProc(consumer, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ids.length });

    const result = ih.computeInboxRow(
      "I7. end to end, relay and inbox SIGKILLed",
      ids,
      await ih.readEffects(pool),
      `${kills.join("; ")}; last inbox: ${stats.received ?? 0} deliveries, ${stats.duplicates ?? 0} duplicates dropped`,
    );
    h.recordRow(result);
    console.log(kills.join("; "));
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);
