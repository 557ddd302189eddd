// The inbox gives a message up before its last attempt: a handler's NonRetryableError (or an error the `isRetryable`
// option refuses) makes it dead at once, its `dead` hook run as for a last attempt; a delivery whose x-expires-at
// passed before it was claimed is stored dead without its handler running (the hook runs); a malformed
// x-expires-at is an invalid delivery. Each counted (event with its reason, metric attribute reason). Against the
// real PostgreSQL and RabbitMQ.
import { randomUUID } from "node:crypto";
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type InboxEvent, type InboxOptions, inbox, NonRetryableError } from "../../src/index.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { disableTelemetry, registerMetrics, sumOf } from "../support/otel.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);
let collect: () => Promise<ResourceMetrics>;

type Body = { n: number; fail?: "plain" | "non-retryable" | "wrapped" | "refused" };
type Messages = { "order.created": Body };

async function setUp(options: Partial<InboxOptions<Messages, typeof prisma, any>> = {}) {
  const { exchange, queue } = await exchangeAndQueue("give-up");
  const events: InboxEvent[] = [];
  const deadHook: Array<{ messageId: string; error: string; attempt: number }> = [];
  const box = inbox<Messages, typeof prisma>({
    prisma,
    queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: {
      effect: {
        on: "order.created",
        handle: async (message, tx) => {
          await recordEffect(tx, message, "effect");
          const fail = message.payload.fail;
          if (fail === "plain") throw new Error("failing on purpose");
          if (fail === "non-retryable") throw new NonRetryableError("no retry fixes this");
          if (fail === "wrapped") throw new Error("wrapper", { cause: new NonRetryableError("inner") });
          if (fail === "refused") throw new RangeError("out of range");
        },
        dead: async (message, tx, error) => {
          deadHook.push({
            messageId: message.messageId,
            error: `${error.name}: ${error.message}`,
            attempt: message.attempt,
          });
          await recordEffect(tx, message, "dead-hook");
        },
      },
    },
    sweepIntervalMs: 100,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 50,
    maxAttempts: 5,
    logger: quiet,
    ...options,
  });
  box.onEvent((e) => events.push(e));
  track(box);
  const publish = (body: Body, headers?: Record<string, unknown>, messageId = randomUUID()) => {
    channel.publish(exchange, "order.created", Buffer.from(JSON.stringify(body)), { messageId, headers });
    return messageId;
  };
  return { box, events, deadHook, publish, queue };
}

const row = async (messageId: string) =>
  (
    await pool.query(
      "SELECT status, attempts, last_error, handler FROM inbox_message WHERE message_id = $1 ORDER BY id",
      [messageId],
    )
  ).rows;
const effects = async (messageId: string) =>
  (await pool.query('SELECT handler FROM "Effect" WHERE "messageId" = $1 ORDER BY id', [messageId])).rows.map(
    (r) => r.handler,
  );

/** The inbox's dead counter for `queue` with `reason`. */
const deadCounted = async (queue: string, reason: string) =>
  sumOf(await collect(), "prisma_outbox.inbox.dead", { "messaging.destination.subscription.name": queue, reason });

beforeAll(() => {
  ({ collect } = registerMetrics());
});
beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect"');
});
afterAll(async () => {
  disableTelemetry();
  await prisma.$disconnect();
  await pool.end();
});

describe("errors not worth retrying", () => {
  it("a NonRetryableError (or one in the cause chain) is dead at once: attempts 1, the dead hook runs, counted", async () => {
    const { box, events, deadHook, publish, queue } = await setUp();
    await box.start({ databaseUrl, amqpUrl });
    const direct = publish({ n: 1, fail: "non-retryable" });
    const wrapped = publish({ n: 2, fail: "wrapped" });
    const plain = publish({ n: 3, fail: "plain" });
    await channel.waitForConfirms();
    // The three can be two batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES): the first two's rows may
    // commit after the last one is dead (five attempts), so they are waited for too.
    const statuses = async () => Promise.all([direct, wrapped, plain].map(async (id) => (await row(id))[0]?.status));
    await expect.poll(statuses, { timeout: 20_000 }).toEqual(["dead", "dead", "dead"]);
    expect(await row(direct)).toEqual([
      { status: "dead", attempts: 1, last_error: "NonRetryableError: no retry fixes this", handler: "effect" },
    ]);
    expect((await row(wrapped))[0]).toMatchObject({ status: "dead", attempts: 1, last_error: "Error: wrapper" });
    expect((await row(plain))[0]).toMatchObject({ status: "dead", attempts: 5 });
    // The handler's write rolled back; the dead hook's committed.
    expect(await effects(direct)).toEqual(["dead-hook"]);
    expect(deadHook.filter((d) => d.messageId === direct)).toEqual([
      { messageId: direct, error: "NonRetryableError: no retry fixes this", attempt: 1 },
    ]);
    const deadEvents = events.filter((e) => e.type === "dead-lettered");
    expect(deadEvents.find((e) => e.messageId === direct)).toMatchObject({ attempts: 1, reason: "non-retryable" });
    expect(deadEvents.find((e) => e.messageId === wrapped)).toMatchObject({ attempts: 1, reason: "non-retryable" });
    expect(deadEvents.find((e) => e.messageId === plain)).toMatchObject({ attempts: 5, reason: "attempts" });
    expect(events.filter((e) => e.type === "retry-scheduled" && e.messageId !== plain)).toHaveLength(0);
    await expect.poll(() => deadCounted(queue, "non-retryable"), { timeout: 10_000 }).toBe(2);
    expect(await deadCounted(queue, "attempts")).toBe(1);
  });

  it("isRetryable: an error it refuses is dead at once; one it accepts is retried; a throwing predicate retries", async () => {
    const seen: string[] = [];
    const { box, events, publish } = await setUp({
      isRetryable: (error, message) => {
        const { n } = message.payload as Body;
        seen.push(`${n}:${error.name}`);
        if (n === 3) throw new Error("predicate bug");
        return !(error instanceof RangeError);
      },
      maxAttempts: 2,
    });
    await box.start({ databaseUrl, amqpUrl });
    const refused = publish({ n: 1, fail: "refused" });
    const accepted = publish({ n: 2, fail: "plain" });
    const throwing = publish({ n: 3, fail: "refused" });
    await channel.waitForConfirms();
    // The first one and the last two can be two batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES): the
    // last two may be dead (two attempts each) before the first one's row commits, so its row is waited for too.
    const statuses = async () =>
      Promise.all([refused, accepted, throwing].map(async (id) => (await row(id))[0]?.status));
    await expect.poll(statuses, { timeout: 20_000 }).toEqual(["dead", "dead", "dead"]);
    expect((await row(refused))[0]).toMatchObject({
      status: "dead",
      attempts: 1,
      last_error: "RangeError: out of range",
    });
    expect((await row(accepted))[0]).toMatchObject({ attempts: 2 });
    expect((await row(throwing))[0]).toMatchObject({ attempts: 2 });
    expect(events.find((e) => e.type === "dead-lettered" && e.messageId === refused)).toMatchObject({
      reason: "non-retryable",
    });
    expect(events.find((e) => e.type === "dead-lettered" && e.messageId === throwing)).toMatchObject({
      reason: "attempts",
    });
    expect(seen).toContain("1:RangeError");
  });
});

describe("expiry", () => {
  it("an expired delivery is stored dead (MessageExpiredError), its handler not run, the dead hook run, counted; a live one is handled", async () => {
    const { box, events, deadHook, publish, queue } = await setUp();
    await box.start({ databaseUrl, amqpUrl });
    const past = new Date(Date.now() - 60_000).toISOString();
    const expired = publish({ n: 1 }, { "x-expires-at": past });
    const epochMs = publish({ n: 2 }, { "x-expires-at": Date.now() - 60_000 });
    const alive = publish({ n: 3 }, { "x-expires-at": new Date(Date.now() + 60_000).toISOString() });
    await channel.waitForConfirms();
    await expect.poll(async () => (await row(alive))[0]?.status, { timeout: 20_000 }).toBe("processed");
    await expect.poll(async () => (await row(epochMs))[0]?.status, { timeout: 20_000 }).toBe("dead");
    await expect.poll(async () => (await row(expired))[0]?.status, { timeout: 20_000 }).toBe("dead");
    expect((await row(expired))[0]).toMatchObject({
      attempts: 1,
      last_error: `MessageExpiredError: expired at ${past}, before it was handled (x-expires-at)`,
    });
    expect(await effects(expired)).toEqual(["dead-hook"]); // the handler's "effect" never written
    expect(await effects(epochMs)).toEqual(["dead-hook"]);
    expect(await effects(alive)).toEqual(["effect"]);
    expect(deadHook.find((d) => d.messageId === expired)?.error).toMatch(/^MessageExpiredError/);
    expect(events.find((e) => e.type === "dead-lettered" && e.messageId === expired)).toMatchObject({
      reason: "expired",
    });
    await expect.poll(() => deadCounted(queue, "expired"), { timeout: 10_000 }).toBe(2);
  });

  it("decided at claim: a delivery that expires while it waits for a retry is dead at its next claim", async () => {
    const { box, events, publish } = await setUp({ retryBaseDelayMs: 2_000, retryMaxDelayMs: 2_000 });
    await box.start({ databaseUrl, amqpUrl });
    const soon = publish({ n: 1, fail: "plain" }, { "x-expires-at": new Date(Date.now() + 1_000).toISOString() });
    await channel.waitForConfirms();
    await expect.poll(async () => (await row(soon))[0]?.status, { timeout: 20_000 }).toBe("dead");
    expect((await row(soon))[0]).toMatchObject({
      attempts: 2,
      last_error: expect.stringMatching(/^MessageExpiredError/),
    });
    expect(events.filter((e) => e.type === "retry-scheduled" && e.messageId === soon)).toHaveLength(1);
    expect(events.find((e) => e.type === "dead-lettered" && e.messageId === soon)).toMatchObject({ reason: "expired" });
  });

  it("a malformed x-expires-at is an invalid delivery: stored dead with a clear reason, never handled, the inbox goes on", async () => {
    const { box, events, publish, queue } = await setUp();
    await box.start({ databaseUrl, amqpUrl });
    const bad = [
      publish({ n: 1 }, { "x-expires-at": "tomorrow" }),
      publish({ n: 2 }, { "x-expires-at": "2026-12-03" }), // no time, no zone: read differently per reader
      publish({ n: 3 }, { "x-expires-at": true }),
      publish({ n: 4 }, { "x-expires-at": 1.5 }),
      publish({ n: 5 }, { "x-expires-at": "99999-01-01T00:00:00Z" }),
    ];
    const fine = publish({ n: 6 });
    await channel.waitForConfirms();
    await expect.poll(async () => (await row(fine))[0]?.status, { timeout: 20_000 }).toBe("processed");
    for (const id of bad) {
      await expect.poll(async () => (await row(id))[0]?.status, { timeout: 10_000 }).toBe("dead");
      expect((await row(id))[0].last_error).toMatch(/the header x-expires-at is malformed/);
      expect(await effects(id)).toEqual([]);
    }
    expect(events.filter((e) => e.type === "invalid")).toHaveLength(5);
    await expect.poll(() => deadCounted(queue, "invalid"), { timeout: 10_000 }).toBe(5);
  });
});
