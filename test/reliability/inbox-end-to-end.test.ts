// Inbox scenario I7, end to end: the app writes outbox messages with its Prisma client, a relay worker publishes them,
// RabbitMQ routes them to the inbox's queue, and an inbox worker runs the handler, which writes one Effect row. The
// relay worker and the inbox worker are each SIGKILLed mid-stream (and started again). Every committed outbox message
// must have exactly one handler effect: the relay's duplicates after its kill are the inbox's to absorb.
import { expect, it } from "vitest";
import {
  expectNoLoss,
  killProc,
  outboxCount,
  recordRow,
  size,
  sleep,
  startWorker,
  streamMessages,
  TEST_TIMEOUT,
  useScenario,
  waitUntil,
} from "./harness.js";
import {
  computeInboxRow,
  effectCount,
  inboxBackends,
  inboxStats,
  inboxStatuses,
  readEffects,
  startInbox,
  startPublisher,
  waitForEffects,
} from "./inbox-harness.js";

const { amqpUrl, url, pool, prisma, defer } = await useScenario();

const ROUNDS = size(1, 4);
const FLOW_MS = size(1_200, 2_000);

it(
  `I7. app -> outbox -> relay -> RabbitMQ -> inbox -> handler, relay and inbox each SIGKILLed ${ROUNDS} times: one effect per committed message`,
  async () => {
    // The exchange and the inbox's queue (bound with '#'); the publisher itself is not used: the relay publishes.
    const broker = await startPublisher(amqpUrl, "rel.inbox.e2e");
    defer(() => broker.close());
    const relayEnv = { OUTBOX_BATCH_SIZE: "100", OUTBOX_SWEEP_MIN_AGE_MS: "1000" };
    const inboxEnv = { INBOX_HANDLER_TIMEOUT_MS: "1000", INBOX_SWEEP_INTERVAL_MS: "100" };
    const startRelay = (name: string) => startWorker({ databaseUrl: url, amqpUrl, env: relayEnv, name });
    const startConsumer = (name: string) => startInbox({ ...broker, databaseUrl: url, amqpUrl, env: inboxEnv, name });
    let relay = await startRelay("relay-0");
    let consumer = await startConsumer("inbox-0");
    const writer = streamMessages(prisma, { exchange: broker.exchange, chunk: 10, everyMs: 25 });
    const kills: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await sleep(FLOW_MS);
      // The relay, while it publishes the stream (the outbox is written to all the time).
      expect((await killProc(relay, "SIGKILL")).signal).toBe("SIGKILL");
      kills.push(`relay killed with ${await outboxCount(pool)} in the outbox`);
      await sleep(200);
      relay = await startRelay(`relay-${round + 1}`);
      await sleep(FLOW_MS);
      // The inbox worker, while it handles the stream.
      const before = await effectCount(pool);
      await waitUntil(async () => (await effectCount(pool)) > before, "the inbox to be handling", 10_000, 5);
      expect((await killProc(consumer, "SIGKILL")).signal).toBe("SIGKILL");
      await waitUntil(async () => (await inboxBackends(pool)) === 0, "the killed inbox's connections to end");
      kills.push(`inbox killed with ${(await inboxStatuses(pool)).pending ?? 0} rows pending`);
      consumer = await startConsumer(`inbox-${round + 1}`);
    }
    await sleep(FLOW_MS);
    const ids = await writer.stop();
    expect(writer.errors).toEqual([]);
    // Rows the killed inbox had claimed wait out their lease (handlerTimeoutMs + 15 s).
    await waitForEffects(pool, ids, { timeoutMs: 90_000 });
    expect(await outboxCount(pool)).toBe(0);
    const stats = inboxStats(consumer);
    expect((await killProc(relay, "SIGTERM")).code).toBe(0);
    expect((await killProc(consumer, "SIGTERM")).code).toBe(0);
    expect(await inboxStatuses(pool)).toEqual({ processed: ids.length });

    const result = computeInboxRow(
      "I7. end to end, relay and inbox SIGKILLed",
      ids,
      await readEffects(pool),
      `${kills.join("; ")}; last inbox: ${stats.received ?? 0} deliveries, ${stats.duplicates ?? 0} duplicates dropped`,
    );
    recordRow(result);
    console.log(kills.join("; "));
    expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  TEST_TIMEOUT,
);
