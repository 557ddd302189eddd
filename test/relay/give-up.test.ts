// The relay gives a message up before its last attempt: a refusal the user's `isRetryable` says no retry fixes, and a
// message whose expiry (`expiresAt` / `ttlMs`, header x-expires-at) passed before it was published. Both go to the
// dead letters at once with attempts 1 and a reason, counted (event, metric); an expired one is never published, a
// live one goes with the AMQP `expiration` of the time it has left. Against the real PostgreSQL and RabbitMQ.
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { OutboxMessageError, outbox, type RelayEvent } from "../../src/index.js";
import { runCli } from "../support/cli.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { disableTelemetry, registerMetrics, sumOf } from "../support/otel.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const { relay, defer } = useTestRelays({ databaseUrl: url, amqpUrl, queue: false, sweepIntervalMs: 100 });
let collect: () => Promise<ResourceMetrics>;

const deadLetters = async () =>
  (await pool.query("SELECT message_id::text, attempts, last_error, headers FROM outbox_dead_letter ORDER BY id")).rows;
const outboxCount = async () => Number((await pool.query("SELECT count(*) FROM outbox_message")).rows[0].count);

/** The dead_letters counter of `exchange` with `reason` (0 when there is no such point). */
const deadCounted = async (exchange: string, reason: string) =>
  sumOf(await collect(), "prisma_outbox.relay.dead_letters", { "messaging.destination.name": exchange, reason });

async function consumer(bindingKey = "#") {
  const c = await startCountingConsumer(amqpUrl, uniqueName("give-up"), bindingKey);
  defer(() => c.close());
  return c;
}

beforeAll(() => {
  ({ collect } = registerMetrics());
});
beforeEach(async () => {
  await pool.query("TRUNCATE outbox_message, outbox_dead_letter RESTART IDENTITY CASCADE");
});
afterAll(async () => {
  disableTelemetry();
  await base.$disconnect();
  await pool.end();
});

describe("errors not worth retrying", () => {
  it("isRetryable false: a refused message is dead at once (attempts 1, reason non-retryable), counted; the rest flow", async () => {
    const c = await consumer("ok.#"); // "nowhere" has no route: the broker returns it as unroutable
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const told: Array<{ error: string; attempts: number; routingKey: string }> = [];
    const r = relay({
      maxAttempts: 10,
      retryBaseDelayMs: 20,
      retryMaxDelayMs: 50,
      sweepMinAgeMs: 0,
      isRetryable: (error, message) => {
        told.push({ error: error.message, attempts: message.attempts, routingKey: message.routingKey });
        return !/unroutable/i.test(error.message);
      },
    });
    const events: RelayEvent[] = [];
    r.onEvent((e) => events.push(e));
    await r.start();
    const [hopeless] = await prisma.$enqueue({ routingKey: "nowhere", payload: 1 });
    await prisma.$enqueue(Array.from({ length: 5 }, (_, i) => ({ routingKey: `ok.${i}`, payload: i })));
    await c.waitForDistinct(5, 10_000);
    await expect.poll(deadLetters, { timeout: 10_000 }).toHaveLength(1);
    const [dead] = await deadLetters();
    expect(dead).toMatchObject({ message_id: hopeless, attempts: 1 });
    expect(dead.last_error).toMatch(/unroutable/i);
    expect(await outboxCount()).toBe(0);
    expect(told).toEqual([{ error: expect.stringMatching(/unroutable/i), attempts: 1, routingKey: "nowhere" }]);
    expect(events.filter((e) => e.type === "retry-scheduled")).toHaveLength(0);
    expect(events.find((e) => e.type === "dead-lettered")).toMatchObject({
      messageId: hopeless,
      attempts: 1,
      reason: "non-retryable",
    });
    expect(r.stats().deadLettered).toBe(1);
    await expect.poll(() => deadCounted(c.exchange, "non-retryable"), { timeout: 10_000 }).toBe(1);
  });
});

describe("expiry", () => {
  it("an expired row is not published: dead letter with MessageExpiredError (reason expired), counted; a live one carries expiration and x-expires-at", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    // Written before the relay runs: one already past its expiry, one alive for a minute, one without expiry.
    const past = new Date(Date.now() - 60_000);
    const [expired] = await prisma.$enqueue({ routingKey: "a", payload: 1, expiresAt: past });
    const [alive] = await prisma.$enqueue({ routingKey: "b", payload: 2, ttlMs: 60_000, headers: { tenant: "t" } });
    const [plain] = await prisma.$enqueue({ routingKey: "c", payload: 3 });
    const r = relay({ sweepMinAgeMs: 0 });
    const events: RelayEvent[] = [];
    r.onEvent((e) => events.push(e));
    await r.start();
    await c.waitForDistinct(2, 10_000);
    await expect.poll(deadLetters, { timeout: 10_000 }).toHaveLength(1);
    const [dead] = await deadLetters();
    expect(dead).toMatchObject({ message_id: expired, attempts: 1 });
    expect(dead.last_error).toBe(
      `MessageExpiredError: expired at ${past.toISOString()}, before it was published (x-expires-at)`,
    );
    expect(dead.headers).toEqual({ "x-expires-at": past.toISOString() });
    expect(events.find((e) => e.type === "dead-lettered")).toMatchObject({ messageId: expired, reason: "expired" });
    await expect.poll(() => deadCounted(c.exchange, "expired"), { timeout: 10_000 }).toBe(1);

    const live = c.arrivals.find((a) => a.messageId === alive)!;
    expect(live.properties.headers).toMatchObject({ tenant: "t", "x-expires-at": expect.any(String) });
    const expiresAt = Date.parse(String(live.properties.headers?.["x-expires-at"]));
    expect(Math.abs(expiresAt - (Date.now() + 60_000))).toBeLessThan(30_000);
    const expiration = Number(live.properties.expiration);
    expect(expiration).toBeGreaterThan(0);
    expect(expiration).toBeLessThanOrEqual(60_000);
    const none = c.arrivals.find((a) => a.messageId === plain)!;
    expect(none.properties.expiration).toBeUndefined();
    expect(c.arrivals.some((a) => a.messageId === expired)).toBe(false);
    expect(await outboxCount()).toBe(0);

    // The dead-letters command shows the reason, and filters on it.
    const listed = await runCli(["dead-letters", "list", "--error", "MessageExpiredError"], { DATABASE_URL: url });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(expired);
    expect(listed.stdout).toContain("MessageExpiredError: expired at");
  });

  it("a row that expires while it waits (delayed past its expiry) is dead-lettered when claimed, never published", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const r = relay({ sweepMinAgeMs: 0 });
    await r.start();
    const [late] = await prisma.$enqueue({
      routingKey: "late",
      payload: 1,
      availableAt: new Date(Date.now() + 1_000),
      ttlMs: 300,
    });
    const [marker] = await prisma.$enqueue({
      routingKey: "marker",
      payload: 2,
      availableAt: new Date(Date.now() + 1_500),
    });
    await c.waitForDistinct(1, 15_000);
    expect(c.arrivals.map((a) => a.messageId)).toEqual([marker]);
    await expect.poll(deadLetters, { timeout: 10_000 }).toHaveLength(1); // committed with, or before, the marker's batch
    const [dead] = await deadLetters();
    expect(dead).toMatchObject({ message_id: late, attempts: 1 });
    expect(dead.last_error).toMatch(/^MessageExpiredError: expired at .* before it was published/);
  });

  it("$enqueue: the header name is reserved, expiresAt and ttlMs are checked", async () => {
    const prisma = base.$extends(outbox({ exchange: "x", queue: false }));
    await expect(prisma.$enqueue({ routingKey: "a", payload: 1, headers: { "X-Expires-At": "soon" } })).rejects.toThrow(
      /reserved for the expiry/,
    );
    await expect(prisma.$enqueue({ routingKey: "a", payload: 1, ttlMs: 1, expiresAt: new Date() })).rejects.toThrow(
      OutboxMessageError,
    );
    await expect(prisma.$enqueue({ routingKey: "a", payload: 1, ttlMs: 0 })).rejects.toThrow(/ttlMs/);
    await expect(prisma.$enqueue({ routingKey: "a", payload: 1, expiresAt: new Date(Number.NaN) })).rejects.toThrow(
      /expiresAt/,
    );
    expect(await outboxCount()).toBe(0);
  });
});
