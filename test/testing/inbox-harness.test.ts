// The test kit's consuming side against the real PostgreSQL: the app's own inbox on the in-memory broker, its
// handlers run in the app's Prisma transaction; retries on the test clock; and both sides in one process.
import { afterAll, describe, expect, it } from "vitest";
import { inbox, outbox } from "../../src/index.js";
import {
  MemoryBroker,
  OutboxExpectationError,
  startInboxHarness,
  startOutboxHarness,
  TestClock,
} from "../../src/testing/index.js";
import { recordEffect } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const base = newPrismaClient(databaseUrl);
const prisma = base.$extends(outbox<typeof base>({ exchange: "shop", events: { Order: { create: true } } }));
const broker = new MemoryBroker();
const clock = new TestClock();

type Messages = { "order.created": { id: number; number: string; fail?: number } };
/** How many times each message id has been attempted by the flaky handler. */
const attempts = new Map<string, number>();
const deadHook: string[] = [];

const billing = inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "billing", bindings: [{ exchange: "shop", routingKey: "order.*" }] },
  exchanges: [{ name: "shop", type: "topic" }],
  maxAttempts: 3,
  retryBaseDelayMs: 30_000,
  retryMaxDelayMs: 60_000,
  logger: quiet,
  handlers: {
    invoice: {
      on: "order.created",
      handle: async (message, tx) => {
        const n = (attempts.get(message.messageId) ?? 0) + 1;
        attempts.set(message.messageId, n);
        await recordEffect(tx, message, "invoice");
        if (n <= (message.payload.fail ?? 0)) throw new Error(`failing on purpose, attempt ${n}`);
      },
      dead: async (message) => {
        deadHook.push(message.messageId);
      },
    },
  },
});

const receiving = await startInboxHarness(billing, { databaseUrl, broker, clock });
const sending = await startOutboxHarness({
  databaseUrl,
  broker,
  clock,
  exchanges: [{ name: "shop", type: "topic" }],
  relay: { logger: quiet },
});
afterAll(async () => {
  await sending.stop();
  await receiving.stop();
  await pool.end();
  await base.$disconnect();
});

const effects = async (messageId: string) =>
  (await pool.query(`SELECT count(*)::int AS n FROM "Effect" WHERE "messageId" = $1`, [messageId])).rows[0].n;

describe("deliver", () => {
  it("runs the handler through the inbox's real path and says it was processed", async () => {
    const outcome = await receiving.deliver({ routingKey: "order.created", payload: { id: 1, number: "o-1" } });
    expect(outcome).toMatchObject({
      duplicate: false,
      invalid: undefined,
      handlers: [{ handler: "invoice", status: "processed", attempts: 1, error: undefined }],
    });
    expect(await effects(outcome.messageId)).toBe(1);
  });

  it("drops a duplicate delivery, as in production: one effect", async () => {
    const first = await receiving.deliver({ routingKey: "order.created", payload: { id: 2, number: "o-2" } });
    const again = await receiving.deliver({
      routingKey: "order.created",
      messageId: first.messageId,
      payload: { id: 2, number: "o-2" },
    });
    expect(again.duplicate).toBe(true);
    expect(again.handlers).toEqual(first.handlers);
    expect(await effects(first.messageId)).toBe(1);
  });

  it("fails twice, then succeeds on the third attempt once the clock moves: no waiting for the backoff", async () => {
    const started = Date.now();
    const outcome = await receiving.deliver({
      routingKey: "order.created",
      payload: { id: 3, number: "o-3", fail: 2 },
    });
    expect(outcome.handlers).toMatchObject([
      { status: "retrying", attempts: 1, error: expect.stringContaining("attempt 1") },
    ]);
    expect(outcome.handlers[0]!.nextAttemptAt!.getTime()).toBeGreaterThan(clock.now().getTime() + 10_000);
    // Without the clock nothing runs: the settled state holds.
    expect((await receiving.settled()).find((o) => o.messageId === outcome.messageId)?.handlers[0]?.attempts).toBe(1);
    await clock.advance(60_000);
    expect((await receiving.outcome(outcome.messageId)).handlers[0]?.attempts).toBeLessThanOrEqual(2);
    const [second] = (await receiving.settled()).filter((o) => o.messageId === outcome.messageId);
    expect(second?.handlers).toMatchObject([{ status: "retrying", attempts: 2 }]);
    await clock.advance(60_000);
    const [third] = (await receiving.settled()).filter((o) => o.messageId === outcome.messageId);
    expect(third?.handlers).toMatchObject([{ status: "processed", attempts: 3, error: undefined }]);
    expect(attempts.get(outcome.messageId)).toBe(3);
    // The failed attempts' writes rolled back with them.
    expect(await effects(outcome.messageId)).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("is dead after the last attempt, with its error, and onDead ran", async () => {
    const outcome = await receiving.deliver({
      routingKey: "order.created",
      payload: { id: 4, number: "o-4", fail: 9 },
    });
    await clock.advance(60_000);
    await receiving.settled();
    await clock.advance(60_000);
    const [dead] = (await receiving.settled()).filter((o) => o.messageId === outcome.messageId);
    expect(dead?.handlers).toMatchObject([
      { status: "dead", attempts: 3, error: expect.stringContaining("attempt 3") },
    ]);
    expect(deadHook).toContain(outcome.messageId);
  });

  it("says why a delivery is invalid (no handler takes it): stored dead", async () => {
    const outcome = await receiving.deliver({ routingKey: "order.shipped", payload: { id: 5 } });
    expect(outcome.invalid).toMatch(/no handler takes routing key "order.shipped"/);
    expect(outcome.handlers).toMatchObject([{ handler: "", status: "dead" }]);
  });

  it("refuses a message the queue's bindings would never route to it", async () => {
    await expect(receiving.deliver({ routingKey: "invoice.created", payload: {} })).rejects.toThrow(
      /does not reach the inbox's queue "billing" \(it reached prisma-outbox.testing.captured\): check the queue's bindings/,
    );
  });
});

describe("both sides in one process", () => {
  it("the app's write reaches the inbox's handler through the relay and the broker's routing", async () => {
    const mark = sending.mark();
    const order = await prisma.order.create({ data: { number: "o-e2e", amount: 7 } });
    const [message] = await sending.expectPublished(
      { routingKey: "order.created", payload: { id: order.id } },
      { since: mark },
    );
    expect(message?.queues).toContain("billing");
    const outcomes = await receiving.settled();
    expect(outcomes.find((o) => o.messageId === message?.messageId)?.handlers).toMatchObject([
      { handler: "invoice", status: "processed" },
    ]);
    expect(await effects(message!.messageId!)).toBe(1);
    // Delivering what was captured again is a duplicate, as a relay's retry after a crash would be.
    const again = await receiving.deliver(message!);
    expect(again.duplicate).toBe(true);
    expect(await effects(message!.messageId!)).toBe(1);
  });
});

describe("waiting has a bound and says what it waited for", () => {
  it("a handler that hangs past the harness's timeout fails settled() with the message and its attempts", async () => {
    const stuck = inbox<Messages, typeof prisma>({
      prisma,
      queue: { name: "stuck", bindings: [] },
      logger: quiet,
      handlerTimeoutMs: 60_000,
      stopTimeoutMs: 100,
      handlers: { hang: { on: "order.created", handle: () => new Promise(() => {}) } },
    });
    const harness = await startInboxHarness(stuck, { databaseUrl, broker: new MemoryBroker(), timeoutMs: 300 });
    try {
      const failure = harness.deliver({ routingKey: "order.created", payload: { id: 6, number: "o-6" } });
      await expect(failure).rejects.toBeInstanceOf(OutboxExpectationError);
      await expect(failure).rejects.toThrow(
        /1 message\(s\) were not settled .* within 300 ms:\n {2}\S+: hang attempts 1/,
      );
    } finally {
      await harness.stop().catch(() => {});
    }
  });
});
