// End to end in one process on a real PostgreSQL, the broker in memory: the app writes through outbox(), a relay
// publishes into a MemoryBroker (createRelay({ transport: broker.transport(), exchanges })), and an inbox started on
// the same broker (start({ databaseUrl, transport: broker })) handles each message once, a duplicate dropped.
import { afterAll, afterEach, expect, it } from "vitest";
import { createRelay, type Inbox, inbox, outbox, type Relay } from "../../src/index.js";
import { MemoryBroker } from "../../src/transport/memory-broker.js";
import { recordEffect } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { until } from "../support/wait.js";

const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl).$extends(outbox({ exchange: "shop", queue: false }));
const running: Array<Relay | Inbox> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await pool.end();
  await prisma.$disconnect();
});

type Messages = { "order.created": { n: number } };

async function effects(): Promise<Array<{ messageId: string; handler: string }>> {
  return (await pool.query('SELECT "messageId", handler FROM "Effect" ORDER BY id')).rows;
}

it("a relay publishes into the broker and an inbox on it handles every message once", async () => {
  const broker = new MemoryBroker();
  const relay = createRelay({
    databaseUrl,
    transport: broker.transport(),
    exchanges: [{ name: "shop", type: "topic" }],
    queue: false,
    sweepIntervalMs: 50,
    sweepMinAgeMs: 0,
    logger: quiet,
  });
  running.push(relay);
  const billing = inbox<Messages, typeof prisma>({
    prisma,
    queue: { name: "billing", bindings: [{ exchange: "shop", routingKey: "order.*" }] },
    handlers: {
      invoice: { on: "order.created", handle: (message, tx) => recordEffect(tx, message, "invoice") },
    },
    sweepIntervalMs: 100,
    logger: quiet,
  });
  running.push(billing);
  let duplicates = 0;
  billing.onEvent((e) => {
    if (e.type === "received") duplicates += e.duplicates;
  });
  // The relay declares the exchange; the inbox binds its queue to it.
  await relay.start();
  await billing.start({ databaseUrl, transport: broker });

  const ids = await prisma.$enqueue(
    Array.from({ length: 20 }, (_, n) => ({ routingKey: "order.created", payload: { n } })),
  );
  // One no queue takes: the relay sees it returned (NO_ROUTE), as with RabbitMQ's mandatory.
  const [unroutable] = await prisma.$enqueue({ routingKey: "payment.made", payload: { n: -1 } });
  await until(async () => (await effects()).length >= ids.length);
  // A duplicate (the relay's at-least-once): stored once, dropped.
  const first = broker.log.find((entry) => entry.message.messageId === ids[0])!;
  broker.publish("shop", "order.created", first.message);
  await until(() => duplicates === 1);
  expect(broker.unacked("billing")).toBe(0);
  expect(broker.messages("billing")).toEqual([]);
  await until(async () => {
    const r = await pool.query("SELECT count(*)::int AS n FROM inbox_message WHERE status = 'processed'");
    return r.rows[0].n === ids.length;
  });

  const handled = await effects();
  expect(handled.map((e) => e.messageId).sort()).toEqual([...ids].sort());
  expect(handled.every((e) => e.handler === "invoice")).toBe(true);
  expect(broker.log.filter((e) => e.message.messageId === unroutable).every((e) => e.queues.length === 0)).toBe(true);
  expect(broker.log.some((e) => e.message.messageId === unroutable)).toBe(true);
  expect(relay.stats()).toMatchObject({ published: ids.length });
});

it("an invalid delivery the inbox rejects goes to its queue's dead-letter exchange, with x-death", async () => {
  const broker = new MemoryBroker();
  broker.assertExchange("dlx", "fanout");
  broker.assertQueue("dead");
  broker.bindQueue("dead", "dlx", "");
  const box = inbox<Messages, typeof prisma>({
    prisma,
    queue: {
      name: "strict",
      arguments: { "x-dead-letter-exchange": "dlx" },
      bindings: [{ exchange: "shop", routingKey: "#" }],
    },
    exchanges: [{ name: "shop", type: "topic" }],
    handlers: { invoice: { on: "order.created", handle: (message, tx) => recordEffect(tx, message, "invoice") } },
    invalidMessages: "reject",
    logger: quiet,
  });
  running.push(box);
  await box.start({ databaseUrl, transport: broker });
  const notJson = {
    content: Buffer.from("{not json"),
    messageId: "bad-1",
    headers: undefined,
    type: undefined,
    correlationId: undefined,
    timestamp: undefined,
  };
  expect(broker.publish("shop", "order.created", notJson)).toEqual(["strict"]);
  await until(() => broker.messages("dead").length === 1);
  expect(broker.messages("dead")[0]).toMatchObject({
    messageId: "bad-1",
    exchange: "dlx",
    routingKey: "order.created",
    headers: { "x-first-death-queue": "strict", "x-first-death-reason": "rejected" },
  });
  expect(broker.unacked("strict")).toBe(0);
});
