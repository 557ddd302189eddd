// Scenario 13: one exchange, two bound queues; one of them is full (x-max-length, x-overflow reject-publish, no
// consumer). RabbitMQ nacks every message the full queue refuses, although the healthy queue took it, and its nack
// does not say which queue refused. The relay retries each nacked message (a partial delivery: one more copy at the
// healthy queue per attempt), then dead-letters it with a reason that says other queues may have it. The healthy
// queue's duplicates are exact: (messages - room in the full queue) x (maxAttempts - 1).
import amqp from "amqplib";
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const MESSAGES = h.size(1_000, 10_000);
/** The full queue's x-max-length: it takes the first ROOM messages, and refuses every later one. */
const ROOM = h.size(400, 4_000);
const MAX_ATTEMPTS = 4;

it(
  `${MESSAGES} messages to an exchange with a healthy queue and a queue full after ${ROOM} (reject-publish): each refused one reaches the healthy queue ${MAX_ATTEMPTS} times, then is dead-lettered`,
  async () => {
    const healthy = await startCountingConsumer(amqpUrl, uniqueName("rel.partial"));
    defer(() => healthy.close());
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createChannel();
    const full = uniqueName("rel.partial.full");
    await channel.assertQueue(full, { arguments: { "x-max-length": ROOM, "x-overflow": "reject-publish" } });
    await channel.bindQueue(full, healthy.exchange, "#");
    defer(async () => {
      await channel.deleteQueue(full).catch(() => {});
      await connection.close().catch(() => {});
    });

    const worker = await h.startWorker({
      databaseUrl: url,
      amqpUrl,
      env: h.fastRetries(MAX_ATTEMPTS),
    });
    const ids = await h.writeMessages(prisma, { exchange: healthy.exchange, count: MESSAGES });
    const refused = MESSAGES - ROOM;
    const deadLetters = () => h.deadLetterRows(pool);
    await h.waitUntil(
      async () => (await deadLetters()).length === refused,
      "every refused message dead-lettered",
      120_000,
    );
    await h.waitForDelivery(pool, healthy, ids, 60_000, 500);
    expect(await h.outboxCount(pool)).toBe(0);
    expect((await channel.checkQueue(full)).messageCount).toBe(ROOM);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);

    const dead = await deadLetters();
    for (const d of dead) {
      expect(d.attempts).toBe(MAX_ATTEMPTS);
      expect(d.last_error).toMatch(/broker nacked message .*other queues bound to the exchange may already have it/);
    }
    // Every attempt of every refused message was nacked, counted and logged.
    const stats = h.stoppedStats(worker);
    expect(stats?.nacked).toBe(refused * MAX_ATTEMPTS);
    expect(stats?.deadLettered).toBe(refused);
    expect(worker.lines.some((l) => l.includes("the broker nacked messages"))).toBe(true);

    const result = h.computeRow(
      "13. one of two bound queues full (reject-publish)",
      ids,
      healthy,
      `maxAttempts ${MAX_ATTEMPTS}; full queue took ${ROOM}, nacked ${refused} x ${MAX_ATTEMPTS} (dead-lettered ${refused}); duplicates = ${refused} x ${MAX_ATTEMPTS - 1}, all at the healthy queue`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    // The exact count: a nacked message reached the healthy queue once per attempt, an accepted one once.
    expect(result.duplicates).toBe(refused * (MAX_ATTEMPTS - 1));
    // Two drain loops share the channel, so which messages the full queue took is not known in advance; how many is.
    const deadIds = new Set(dead.map((d) => d.message_id));
    for (const id of ids) expect(healthy.counts.get(id), id).toBe(deadIds.has(id) ? MAX_ATTEMPTS : 1);
  },
  h.TEST_TIMEOUT,
);
