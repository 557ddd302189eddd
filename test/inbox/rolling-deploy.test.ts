// Rolling deploys (unhandledGraceMs): a delivery that no handler of the inbox receiving it takes waits, pending and
// with no attempt spent, for an inbox of the same queue that has a handler for it; that inbox takes it (once, in its
// place among its key's messages); with none, it is dead after the grace with reason "unhandled", counted. Two inbox
// instances on one queue, an "old" one without the handler for invoice.sent and a "new" one with it, against the real
// PostgreSQL and RabbitMQ.
import { randomUUID } from "node:crypto";
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { afterAll, beforeAll, beforeEach, expect, inject, it } from "vitest";
import { waitingHandler } from "../../src/inbox/unhandled.js";
import { type InboxEvent, type InboxOptions, inbox } from "../../src/index.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { disableTelemetry, registerMetrics, sumOf } from "../support/otel.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { sleep } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);
let collect: () => Promise<ResourceMetrics>;

type Messages = { "order.created": { n: number }; "invoice.sent": { n: number } };

/** An inbox of `queue`: the old version handles order.created only; the new one invoice.sent too. */
function version(
  queue: string,
  exchange: string,
  which: "old" | "new",
  options: Partial<InboxOptions<Messages, typeof prisma, any>> = {},
) {
  const orders = { on: "order.created" as const, handle: (m: any, tx: any) => recordEffect(tx, m, `orders-${which}`) };
  const invoices = { on: "invoice.sent" as const, handle: (m: any, tx: any) => recordEffect(tx, m, "invoices") };
  const box = inbox<Messages, typeof prisma>({
    prisma,
    queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: which === "old" ? { orders } : { orders, invoices },
    sweepIntervalMs: 100,
    logger: quiet,
    ...options,
  });
  const events: InboxEvent[] = [];
  box.onEvent((e) => events.push(e));
  return { box: track(box), events };
}

async function setUp() {
  const { exchange, queue } = await exchangeAndQueue("rolling");
  const publish = (routingKey: string, n: number, key?: string) => {
    const messageId = randomUUID();
    const headers = key === undefined ? undefined : { "x-ordering-key": key };
    channel.publish(exchange, routingKey, Buffer.from(JSON.stringify({ n })), { messageId, headers });
    return messageId;
  };
  return { exchange, queue, publish };
}

const rows = async (messageId: string) =>
  (
    await pool.query(
      "SELECT id::text AS id, status, attempts, handler, last_error FROM inbox_message WHERE message_id = $1 ORDER BY id",
      [messageId],
    )
  ).rows;
const effects = async (handler: string) =>
  (await pool.query('SELECT "messageId" FROM "Effect" WHERE handler = $1 ORDER BY id', [handler])).rows.map(
    (r) => r.messageId,
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

it("an unhandled delivery waits (pending, attempts 0) on the old inbox; the new one, started later, handles it once", async () => {
  const { exchange, queue, publish } = await setUp();
  const old = version(queue, exchange, "old", { unhandledGraceMs: 120_000 });
  await old.box.start({ databaseUrl, amqpUrl });
  const invoice = publish("invoice.sent", 1);
  const order = publish("order.created", 2);
  await channel.waitForConfirms();
  await expect.poll(() => effects("orders-old"), { timeout: 20_000 }).toEqual([order]);
  // The invoice and the order can be two batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES): the order
  // may be handled before the invoice's row commits, so its row is waited for too.
  await expect.poll(async () => (await rows(invoice)).length, { timeout: 20_000 }).toBe(1);
  const [waiting] = await rows(invoice);
  expect(waiting).toMatchObject({ status: "pending", attempts: 0, handler: waitingHandler(queue), last_error: null });
  // The old inbox's sweeper and its pass over waiting rows run every 100 ms: many passes, and the row still waits.
  await sleep(1_500);
  expect(await rows(invoice)).toEqual([waiting]);
  expect(old.events.filter((e) => e.type === "invalid" || e.type === "dead-lettered")).toEqual([]);

  const fresh = version(queue, exchange, "new", { unhandledGraceMs: 120_000 });
  await fresh.box.start({ databaseUrl, amqpUrl });
  await expect.poll(() => effects("invoices"), { timeout: 20_000 }).toEqual([invoice]);
  // Moved to the new inbox's handler with its id (its place in claim order), handled by one attempt.
  expect(await rows(invoice)).toEqual([
    { id: waiting.id, status: "processed", attempts: 1, handler: "invoices", last_error: null },
  ]);
  // Both inboxes keep passing over the queue's waiting rows: nothing is handled twice.
  await sleep(1_000);
  expect(await effects("invoices")).toEqual([invoice]);
  expect(await effects("orders-old")).toEqual([order]);
});

it("with only the old inbox, the delivery is dead after the grace: reason unhandled, attempts 0, counted", async () => {
  const { exchange, queue, publish } = await setUp();
  const old = version(queue, exchange, "old", { unhandledGraceMs: 1_000 });
  await old.box.start({ databaseUrl, amqpUrl });
  const invoice = publish("invoice.sent", 1);
  await channel.waitForConfirms();
  await expect.poll(async () => (await rows(invoice))[0]?.status, { timeout: 20_000 }).toBe("dead");
  expect(await rows(invoice)).toEqual([
    {
      id: expect.any(String),
      status: "dead",
      attempts: 0,
      handler: waitingHandler(queue),
      last_error: expect.stringContaining("no handler took it within 1000 ms"),
    },
  ]);
  await expect
    .poll(() => old.events.filter((e) => e.type === "dead-lettered"), { timeout: 10_000 })
    .toMatchObject([{ messageId: invoice, handler: waitingHandler(queue), attempts: 0, reason: "unhandled" }]);
  await expect.poll(() => deadCounted(queue, "unhandled"), { timeout: 10_000 }).toBe(1);
  expect(await effects("invoices")).toEqual([]);
});

it("without a grace (the default) the delivery is dead at once, as before", async () => {
  const { exchange, queue, publish } = await setUp();
  const old = version(queue, exchange, "old");
  await old.box.start({ databaseUrl, amqpUrl });
  const invoice = publish("invoice.sent", 1);
  await channel.waitForConfirms();
  await expect
    .poll(() => rows(invoice), { timeout: 20_000 })
    .toMatchObject([
      { status: "dead", attempts: 0, handler: "", last_error: expect.stringContaining("no handler takes routing key") },
    ]);
});

it("a waiting keyed message is not overtaken by a later message of its key for the handler that takes it", async () => {
  const { exchange, queue, publish } = await setUp();
  const old = version(queue, exchange, "old", { unhandledGraceMs: 120_000 });
  await old.box.start({ databaseUrl, amqpUrl });
  const first = publish("invoice.sent", 1, "customer-7");
  await channel.waitForConfirms();
  await expect.poll(async () => (await rows(first))[0]?.handler, { timeout: 20_000 }).toBe(waitingHandler(queue));
  await old.box.stop();
  // The new inbox passes over waiting rows only every 3 s (sweepIntervalMs): the later messages of the key arrive,
  // are stored and handed to its processor long before the first one is moved to its handler.
  const fresh = version(queue, exchange, "new", { unhandledGraceMs: 120_000, sweepIntervalMs: 3_000 });
  await fresh.box.start({ databaseUrl, amqpUrl });
  const later = [publish("invoice.sent", 2, "customer-7"), publish("invoice.sent", 3, "customer-7")];
  await channel.waitForConfirms();
  await expect.poll(() => effects("invoices"), { timeout: 30_000 }).toHaveLength(3);
  expect(await effects("invoices")).toEqual([first, ...later]);
});
