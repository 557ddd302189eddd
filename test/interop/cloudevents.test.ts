// CloudEvents interop against the real PostgreSQL and RabbitMQ, checked by code no one here wrote: the official
// `cloudevents` SDK (it has no AMQP binding, so its CloudEvent class and validation judge what we write and read,
// and a foreign producer's message is built from one of its CloudEvents by the AMQP binding's binary content mode).
// - relay with `cloudEvents`: a plain amqplib consumer reads a valid CloudEvent whose id, type, source and time are
//   the message's; our inbox reads the same message and shows the attributes to its handler;
// - a foreign producer (no AMQP message-id, no AMQP type): the inbox takes the id and the type from the attributes,
//   deduplicates on that id, and a native AMQP timestamp is read too;
// - malformed attributes: each delivery is dead with its reason, its valid neighbour is handled.
import type amqp from "amqplib";
import { CloudEvent } from "cloudevents";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type InboxMessage, inbox, OutboxQueue, outbox } from "../../src/index.js";
import { uniqueName } from "../support/consumer.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const base = newPrismaClient(databaseUrl);
const { channel, track, defer, exchangeAndQueue } = await useInboxBroker(amqpUrl);
const { relay } = useTestRelays({ databaseUrl, amqpUrl, queue: false, sweepIntervalMs: 100, logger: quiet });
const POLL = { timeout: 20_000, interval: 50 };

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect", outbox_message RESTART IDENTITY');
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

/** A CloudEvent of the SDK as the AMQP binding's binary content mode puts it on the wire (spec section 3.1). */
function binaryMode(event: CloudEvent<unknown>): { body: Buffer; options: amqp.Options.Publish } {
  const headers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(event.toJSON())) {
    if (name === "data" || name === "data_base64" || name === "datacontenttype" || value === undefined) continue;
    headers[`cloudEvents:${name}`] = value;
  }
  return {
    body: Buffer.from(JSON.stringify(event.data)),
    options: { headers, contentType: event.datacontenttype ?? "application/json" },
  };
}

/** What a consumer using the SDK does with a binary-mode AMQP message: a CloudEvent, validated (strict) by the SDK. */
function fromBinaryMode(message: amqp.ConsumeMessage): CloudEvent<unknown> {
  const attributes: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
    if (name.startsWith("cloudEvents:")) attributes[name.slice("cloudEvents:".length)] = value;
  }
  return new CloudEvent({
    ...attributes,
    datacontenttype: message.properties.contentType,
    data: JSON.parse(message.content.toString()),
  });
}

/** An inbox on a fresh queue bound to `exchange` (every key), whose one handler records what it was given. */
async function recordingInbox(exchange: string, match: { pattern: string } | { type: string }) {
  const seen: InboxMessage[] = [];
  const prisma = base.$extends(outbox({ exchange: "unused", queue: false }));
  const queue = uniqueName("ce.inbox");
  const box = track(
    inbox<Record<string, unknown>, typeof prisma>({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      handlers: {
        record: {
          ...match,
          handle: async (message, tx) => {
            await recordEffect(tx, message, "record");
            seen.push(message);
          },
        },
      },
      sweepIntervalMs: 100,
      logger: quiet,
    }),
  );
  defer(() => channel.deleteQueue(queue).catch(() => {}));
  await box.start({ databaseUrl, amqpUrl });
  return { box, seen };
}

async function effects(): Promise<string[]> {
  return (await pool.query<{ messageId: string }>('SELECT "messageId" FROM "Effect" ORDER BY id')).rows.map(
    (r) => r.messageId,
  );
}

describe("the relay's cloudEvents option", () => {
  it("publishes a CloudEvent the SDK validates, with the message's id, type, source and time; our inbox reads it", async () => {
    const { exchange } = await exchangeAndQueue("ce");
    // A consumer no one here wrote the mapping of: plain amqplib, and the SDK to judge.
    const raw = await channel.assertQueue("", { exclusive: true });
    await channel.bindQueue(raw.queue, exchange, "#");
    const arrivals: amqp.ConsumeMessage[] = [];
    await channel.consume(raw.queue, (m) => m && arrivals.push(m), { noAck: true });
    const { seen } = await recordingInbox(exchange, { pattern: "#" });

    const queue = new OutboxQueue();
    const prisma = base.$extends(outbox<typeof base>({ exchange, queue }));
    const [plain] = await prisma.$enqueue({ routingKey: "order.created", payload: { n: 1 } });
    const [typed] = await prisma.$enqueue({
      routingKey: "order.paid",
      payload: { n: 2 },
      type: "com.example.shop.order.paid",
      headers: { "cloudEvents:subject": "order/2", "cloudEvents:tenant": "t1" },
    });
    const created = new Map(
      (
        await pool.query<{ message_id: string; created_at: Date }>(
          "SELECT message_id::text, created_at FROM outbox_message",
        )
      ).rows.map((r) => [r.message_id, r.created_at.toISOString()]),
    );
    await relay({ queue, cloudEvents: { source: "https://shop.example.com/orders" } }).start();

    await expect.poll(() => arrivals.length, POLL).toBe(2);
    const events = new Map(arrivals.map((m) => [String(m.properties.messageId), m]));
    for (const id of [plain!, typed!]) {
      const message = events.get(id)!;
      expect(message.properties.headers?.["cloudEvents:id"]).toBe(id);
      const event = fromBinaryMode(message); // strict: throws a ValidationError if the SDK finds it invalid
      expect(event.validate()).toBe(true);
      expect(event.specversion).toBe("1.0");
      expect(event.id).toBe(id);
      expect(event.source).toBe("https://shop.example.com/orders");
      expect(event.time).toBe(created.get(id));
      expect(event.datacontenttype).toBe("application/json");
    }
    expect(fromBinaryMode(events.get(plain!)!).type).toBe("order.created");
    const paid = fromBinaryMode(events.get(typed!)!);
    expect(paid.type).toBe("com.example.shop.order.paid");
    expect(paid.subject).toBe("order/2");
    expect(paid.tenant).toBe("t1");
    expect(paid.data).toEqual({ n: 2 });

    // Our inbox: the same attributes, for its handler.
    await expect.poll(() => seen.length, POLL).toBe(2);
    const handled = seen.find((m) => m.messageId === typed)!;
    expect(handled.cloudEvent).toEqual({
      specversion: "1.0",
      id: typed,
      source: "https://shop.example.com/orders",
      type: "com.example.shop.order.paid",
      time: created.get(typed!),
      subject: "order/2",
      tenant: "t1",
    });
  });
});

describe("the inbox reads CloudEvents from a foreign producer", () => {
  it("takes the id and the type from the attributes, deduplicates on the id, reads a native timestamp", async () => {
    const { exchange } = await exchangeAndQueue("ce");
    const { seen } = await recordingInbox(exchange, { type: "com.example.billing.invoice.paid" });
    const event = new CloudEvent({
      source: "urn:example:billing",
      type: "com.example.billing.invoice.paid",
      subject: "invoice/7",
      datacontenttype: "application/json",
      data: { invoice: 7, amount: "12.50" },
    });
    const { body, options } = binaryMode(event);
    // No AMQP message-id and no AMQP type: only the CloudEvents attributes say what it is. Sent twice.
    channel.publish(exchange, "billing", body, options);
    channel.publish(exchange, "billing", body, options);
    // Another producer's event, its time as a native AMQP timestamp (seconds).
    const second = binaryMode(
      new CloudEvent({ source: "/billing", type: "com.example.billing.invoice.paid", data: 1 }),
    );
    second.options.headers!["cloudEvents:time"] = { "!": "timestamp", value: 1_764_756_672 };
    channel.publish(exchange, "billing", second.body, second.options);

    await expect.poll(() => seen.length, POLL).toBe(2);
    await expect.poll(effects, POLL).toHaveLength(2); // committed (seen is filled before the commit)
    await new Promise((r) => setTimeout(r, 500)); // a duplicate handled late would show now
    expect(await effects()).toHaveLength(2);
    const first = seen.find((m) => m.messageId === event.id)!;
    expect(first.type).toBe("com.example.billing.invoice.paid");
    expect(first.payload).toEqual({ invoice: 7, amount: "12.50" });
    expect(first.cloudEvent).toEqual({
      specversion: "1.0",
      id: event.id,
      source: "urn:example:billing",
      type: "com.example.billing.invoice.paid",
      subject: "invoice/7",
      time: event.time,
    });
    // What the handler got is the producer's event, for the SDK.
    const again = new CloudEvent({ ...first.cloudEvent, datacontenttype: "application/json", data: first.payload });
    expect(again.validate()).toBe(true);
    expect(again.toJSON()).toEqual(event.toJSON());
    const other = seen.find((m) => m.messageId !== event.id)!;
    expect(other.cloudEvent?.time).toBe("2025-12-03T10:11:12.000Z");
  });

  it("a delivery with malformed attributes is dead with its reason; its valid neighbour is handled", async () => {
    const { exchange } = await exchangeAndQueue("ce");
    const { seen } = await recordingInbox(exchange, { pattern: "#" });
    const good = {
      "cloudEvents:specversion": "1.0",
      "cloudEvents:id": "ok-1",
      "cloudEvents:source": "/p",
      "cloudEvents:type": "t",
    };
    const malformed: Array<[Record<string, unknown>, string]> = [
      [{ ...good, "cloudEvents:specversion": undefined }, "cloudEvents:specversion is missing"],
      [{ ...good, "cloudEvents:specversion": "0.3" }, 'cloudEvents:specversion is "0.3"; only "1.0" is read'],
      [{ ...good, "cloudEvents:source": undefined }, "cloudEvents:source is missing"],
      [{ ...good, "cloudEvents:type": undefined }, "cloudEvents:type is missing"],
      [{ ...good, "cloudEvents:id": 42 }, "cloudEvents:id must be a string, got 42"],
      [{ ...good, "cloudEvents:time": "yesterday" }, 'cloudEvents:time is not an RFC 3339 timestamp: "yesterday"'],
      [{ ...good, "cloudEvents:Tenant": "t" }, '"cloudEvents:Tenant" is not a CloudEvents attribute name'],
    ];
    for (const [n, [headers]] of malformed.entries()) {
      const defined = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined));
      channel.publish(exchange, "r", Buffer.from(JSON.stringify({ n })), { messageId: `bad-${n}`, headers: defined });
    }
    channel.publish(exchange, "r", Buffer.from("{}"), { headers: good });
    await expect.poll(() => seen.map((m) => m.messageId), POLL).toEqual(["ok-1"]);
    await expect
      .poll(
        async () =>
          (
            await pool.query<{ message_id: string; last_error: string }>(
              "SELECT message_id, last_error FROM inbox_message WHERE status = 'dead' ORDER BY message_id",
            )
          ).rows,
        POLL,
      )
      .toHaveLength(malformed.length);
    const dead = (
      await pool.query<{ message_id: string; last_error: string }>(
        "SELECT message_id, last_error FROM inbox_message WHERE status = 'dead'",
      )
    ).rows;
    for (const [n, [, reason]] of malformed.entries()) {
      const row = dead.find((r) => r.message_id === `bad-${n}`);
      expect(row?.last_error).toContain(`the CloudEvents attributes are malformed: ${reason}`);
    }
    // `seen` is filled inside the handler, before its transaction commits: wait for the committed effect.
    await expect.poll(effects, POLL).toEqual(["ok-1"]);
  });
});
