// Scenarios 9 and 10: one message that makes the broker close the channel, which fails the whole batch it is in.
//   9. 403: the worker's broker user may not write to one exchange (it exists; the passive check passes).
//  10. 406: the message is larger than the broker's max_message_size.
// Before the relay isolated culprits, the batch rolled back without counting attempts and the same rows headed every
// next batch forever: the messages before the culprit were published again and again, the ones after never.
// Now: each culprit is dead-lettered after OUTBOX_MAX_ATTEMPTS with the broker's error, and every other message is
// delivered. The row records the duplicates that isolation costs (messages of a failed part that had reached the
// broker before it closed the channel are published again).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import amqp from "amqplib";
import { beforeEach, expect, it } from "vitest";
import { outbox } from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";

const run = promisify(execFile);
const { amqpUrl, url, pool, base, defer } = await h.useScenario();

const MESSAGES = h.size(2_000, 10_000);
const MAX_ATTEMPTS = 3;

/** rabbitmqctl of the broker the suite uses (a local one: these scenarios change its users and settings). */
async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run("rabbitmqctl", args, { timeout: 60_000 });
  return stdout;
}

// The scenarios share the file's database: each starts with no dead letters.
beforeEach(() => pool.query("DELETE FROM outbox_dead_letter"));
const deadLetters = () => h.deadLetterRows(pool);

const WORKER_ENV = {
  OUTBOX_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  OUTBOX_RETRY_BASE_DELAY_MS: "50",
  OUTBOX_RETRY_MAX_DELAY_MS: "200",
  OUTBOX_SWEEP_INTERVAL_MS: "200",
  OUTBOX_BATCH_SIZE: "200",
};

/**
 * Writes MESSAGES messages in chunks of 100; every `every`-th one (from `offset`) is made a culprit by `poison`.
 * Returns the good ids and the culprits' ids.
 */
async function writeMixed(
  prisma: { $enqueue: (m: never) => Promise<string[]> },
  good: (i: number, writtenAt: number) => object,
  poison: (i: number, writtenAt: number) => object,
  every: number,
) {
  const okIds: string[] = [];
  const culprits: string[] = [];
  for (let start = 0; start < MESSAGES; start += 100) {
    const writtenAt = Date.now();
    const n = Math.min(100, MESSAGES - start);
    const isPoison = (i: number) => i % every === every / 2;
    const written = await prisma.$enqueue(
      Array.from({ length: n }, (_, j) =>
        isPoison(start + j) ? poison(start + j, writtenAt) : good(start + j, writtenAt),
      ) as never,
    );
    for (const [j, id] of written.entries()) (isPoison(start + j) ? culprits : okIds).push(id);
  }
  return { okIds, culprits };
}

async function expectCulpritsDeadLettered(culprits: string[], pattern: RegExp): Promise<void> {
  await h.waitUntil(
    async () => (await deadLetters()).length === culprits.length,
    "every culprit dead-lettered",
    90_000,
  );
  const dead = await deadLetters();
  expect(new Set(dead.map((d) => d.message_id))).toEqual(new Set(culprits));
  for (const d of dead) {
    expect(d.attempts).toBe(MAX_ATTEMPTS);
    expect(d.last_error).toMatch(pattern);
  }
  expect(await h.outboxCount(pool)).toBe(0);
}

it(
  `9. ${MESSAGES} messages, one in 200 to an exchange the broker user may not write to (403): those dead-lettered, the rest delivered`,
  async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.403"), "#");
    defer(() => consumer.close());
    // The forbidden exchange exists (declared by the suite's user): only the write is refused.
    const forbidden = uniqueName("rel.forbidden");
    const admin = await amqp.connect(amqpUrl);
    const channel = await admin.createChannel();
    await channel.assertExchange(forbidden, "topic", { durable: false, autoDelete: false });
    defer(async () => {
      await channel.deleteExchange(forbidden).catch(() => {});
      await admin.close().catch(() => {});
    });
    const user = `prisma_outbox_rel_${randomBytes(4).toString("hex")}`;
    const password = randomBytes(8).toString("hex");
    await rabbitmqctl("add_user", user, password);
    defer(() => rabbitmqctl("delete_user", user));
    const escaped = forbidden.replace(/\./g, "\\.");
    await rabbitmqctl("set_permissions", "-p", "/", user, ".*", `^(?!${escaped}$).*`, ".*");
    const userUrl = new URL(amqpUrl);
    userUrl.username = user;
    userUrl.password = password;

    const prisma = base.$extends(outbox({ queue: false }));
    const worker = await h.startWorker({ databaseUrl: url, amqpUrl: userUrl.toString(), env: WORKER_ENV });
    const { okIds, culprits } = await writeMixed(
      prisma as never,
      (i, writtenAt) => ({ exchange: consumer.exchange, routingKey: `ok.${i}`, payload: { i, writtenAt } }),
      (i, writtenAt) => ({ exchange: forbidden, routingKey: `ok.${i}`, payload: { i, writtenAt } }),
      200,
    );

    await h.waitForDelivery(pool, consumer, okIds, 90_000, 300);
    await expectCulpritsDeadLettered(culprits, /ACCESS_REFUSED|403/);
    expect(worker.countLines(/published in parts to find it/)).toBeGreaterThan(0);
    expect(worker.running).toBe(true);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);

    const okDelays = h.delays(okIds, consumer).sort((a, b) => a - b);
    const result = h.computeRow(
      "9. no write permission on one exchange (403)",
      okIds,
      consumer,
      `${culprits.length} culprits dead-lettered after ${MAX_ATTEMPTS} attempts; ok p50 ${Math.round(okDelays[Math.floor(okDelays.length / 2)] ?? 0)} ms`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect([...culprits].filter((id) => consumer.counts.has(id))).toEqual([]);
  },
  h.TEST_TIMEOUT,
);

it(
  `10. ${MESSAGES} messages, one in 500 above the broker's max_message_size (406): those dead-lettered, the rest delivered`,
  async () => {
    // RabbitMQ 3.10 has no per-vhost or policy limit on message size: max_message_size is the broker's, read by each
    // channel when it opens. Set for this scenario only, restored after (other users' channels opened meanwhile get it
    // too: 2 MiB is far above anything else the suite publishes).
    const before = (await rabbitmqctl("eval", "application:get_env(rabbit, max_message_size).")).trim();
    const original = /\{ok,(\d+)\}/.exec(before)?.[1] ?? "134217728";
    const LIMIT = 2 * 1024 * 1024;
    await rabbitmqctl("eval", `application:set_env(rabbit, max_message_size, ${LIMIT}).`);
    defer(() => rabbitmqctl("eval", `application:set_env(rabbit, max_message_size, ${original}).`));

    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.406"), "#");
    defer(() => consumer.close());
    const prisma = base.$extends(outbox({ queue: false, maxPayloadBytes: 4 * 1024 * 1024 }));
    const worker = await h.startWorker({ databaseUrl: url, amqpUrl, env: WORKER_ENV });
    const big = "x".repeat(LIMIT + 1024);
    const { okIds, culprits } = await writeMixed(
      prisma as never,
      (i, writtenAt) => ({ exchange: consumer.exchange, routingKey: `ok.${i}`, payload: { i, writtenAt } }),
      (i, writtenAt) => ({ exchange: consumer.exchange, routingKey: `ok.${i}`, payload: { i, writtenAt, big } }),
      500,
    );

    await h.waitForDelivery(pool, consumer, okIds, 90_000, 300);
    await expectCulpritsDeadLettered(culprits, /PRECONDITION_FAILED|406|max h.size/);
    expect(worker.running).toBe(true);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);

    const okDelays = h.delays(okIds, consumer).sort((a, b) => a - b);
    const result = h.computeRow(
      "10. message above max_message_size (406)",
      okIds,
      consumer,
      `${culprits.length} culprits of ${Math.round(big.length / 1024)} KiB dead-lettered after ${MAX_ATTEMPTS} attempts; ok p50 ${Math.round(okDelays[Math.floor(okDelays.length / 2)] ?? 0)} ms`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect([...culprits].filter((id) => consumer.counts.has(id))).toEqual([]);
  },
  h.TEST_TIMEOUT,
);
