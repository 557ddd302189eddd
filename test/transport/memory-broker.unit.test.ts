// The in-memory broker's queues and consumers (prefetch, acks, redelivery, dead-lettering, round robin) and its
// publishing transport, without servers.
import { describe, expect, it, vi } from "vitest";
import { OutboxConfigError, OutboxPublishError } from "../../src/errors.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import { type BrokerMessage, MemoryBroker } from "../../src/transport/memory-broker.js";
import type {
  ConsumerEvent,
  ConsumerOptions,
  Delivery,
  OutboundMessage,
  TransportEvent,
} from "../../src/transport/transport.js";

const realSetImmediate = setImmediate;
const tick = () => new Promise<void>((resolve) => realSetImmediate(resolve));

function message(body: string, headers?: Record<string, unknown>): Omit<BrokerMessage, "exchange" | "routingKey"> {
  return {
    content: Buffer.from(body),
    messageId: body,
    headers,
    type: undefined,
    correlationId: undefined,
    timestamp: 1,
  };
}

/** A broker with topic exchange "shop" and queue "q" bound to it with "#" (and `queueArgs`). */
function setUp(queueArgs: Record<string, unknown> = {}) {
  const broker = new MemoryBroker();
  const consumer = (prefetch = 10, queue = "q") => {
    const deliveries: Delivery[] = [];
    const events: Array<TransportEvent | ConsumerEvent> = [];
    const options: ConsumerOptions = {
      queue: { name: queue, arguments: queueArgs, bindings: [{ exchange: "shop", routingKey: "#" }] },
      exchanges: [{ name: "shop", type: "topic" }],
      prefetch,
      onDelivery: (d) => deliveries.push(d),
      onEvent: (e) => events.push(e),
    };
    const c = broker.consumer(options);
    const bodies = () => deliveries.map((d) => d.content.toString());
    return { c, deliveries, events, bodies };
  };
  const publish = (...bodies: string[]) => {
    for (const b of bodies) broker.publish("shop", "order.created", message(b));
  };
  return { broker, consumer, publish };
}

describe("MemoryBroker consumers", () => {
  it("starts: declares its topology, says connected, and delivers on a later tick, never inside publish()", async () => {
    const { broker, consumer, publish } = setUp();
    const { c, bodies, events } = consumer();
    await c.start();
    expect(events).toEqual([{ type: "connected" }]);
    publish("1");
    expect(bodies()).toEqual([]);
    expect(broker.messages("q").map((m) => m.messageId)).toEqual(["1"]);
    await tick();
    expect(bodies()).toEqual(["1"]);
    expect(broker.messages("q")).toEqual([]);
    expect(broker.unacked("q")).toBe(1);
  });

  it("delivers while the test fakes timers (vi.useFakeTimers fakes setImmediate)", async () => {
    const { consumer, publish } = setUp();
    const { c, bodies } = consumer();
    vi.useFakeTimers();
    try {
      await c.start();
      publish("1");
      await tick();
      expect(bodies()).toEqual(["1"]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("never holds more than `prefetch` unacked; an ack (multiple too) lets more come", async () => {
    const { broker, consumer, publish } = setUp();
    const { c, deliveries, bodies } = consumer(2);
    await c.start();
    publish("1", "2", "3", "4", "5");
    await tick();
    expect(bodies()).toEqual(["1", "2"]);
    expect(broker.unacked("q")).toBe(2);
    expect(broker.messages("q")).toHaveLength(3);
    expect(c.ack(deliveries[0]!)).toBe(true);
    await tick();
    expect(bodies()).toEqual(["1", "2", "3"]);
    expect(c.ack(deliveries[2]!, true)).toBe(true); // acks 2 and 3
    expect(broker.unacked("q")).toBe(0);
    await tick();
    expect(bodies()).toEqual(["1", "2", "3", "4", "5"]);
  });

  it("close() puts the unacked back at the head, redelivered, and refuses acks of the old deliveries", async () => {
    const { broker, consumer, publish } = setUp();
    const first = consumer(2);
    await first.c.start();
    publish("1", "2", "3");
    await tick();
    expect(first.bodies()).toEqual(["1", "2"]);
    await first.c.close();
    expect(broker.messages("q").map((m) => m.messageId)).toEqual(["1", "2", "3"]);
    expect(first.c.ack(first.deliveries[0]!)).toBe(false);
    const second = consumer(10);
    await second.c.start();
    await tick();
    expect(second.deliveries.map((d) => [d.content.toString(), d.redelivered])).toEqual([
      ["1", true],
      ["2", true],
      ["3", false],
    ]);
  });

  it("pause() stops new deliveries; what was delivered may still be acked", async () => {
    const { broker, consumer, publish } = setUp();
    const { c, deliveries, bodies } = consumer(1);
    await c.start();
    publish("1", "2");
    await tick();
    await c.pause();
    expect(c.ack(deliveries[0]!)).toBe(true);
    await tick();
    expect(bodies()).toEqual(["1"]);
    expect(broker.messages("q")).toHaveLength(1);
  });

  it("spreads a queue over its consumers round robin", async () => {
    const { consumer, publish } = setUp();
    const a = consumer();
    const b = consumer();
    await a.c.start();
    await b.c.start();
    publish("1", "2", "3", "4", "5");
    await tick();
    expect(a.bodies()).toEqual(["1", "3", "5"]);
    expect(b.bodies()).toEqual(["2", "4"]);
  });

  it("reject() dead-letters to the queue's x-dead-letter-exchange, with x-death counting each death", async () => {
    const { broker, consumer, publish } = setUp({
      "x-dead-letter-exchange": "dlx",
      "x-dead-letter-routing-key": "dead",
    });
    broker.assertExchange("dlx", "direct");
    broker.assertQueue("dlq");
    broker.bindQueue("dlq", "dlx", "dead");
    const { c, deliveries } = consumer();
    await c.start();
    publish("1");
    await tick();
    expect(c.reject(deliveries[0]!)).toBe(true);
    expect(broker.unacked("q")).toBe(0);
    const [dead] = broker.messages("dlq");
    expect(dead).toMatchObject({ messageId: "1", exchange: "dlx", routingKey: "dead" });
    expect(dead!.headers).toMatchObject({
      "x-death": [{ count: 1, reason: "rejected", queue: "q", exchange: "shop", "routing-keys": ["order.created"] }],
      "x-first-death-queue": "q",
      "x-first-death-reason": "rejected",
      "x-first-death-exchange": "shop",
    });
    // Back into q, rejected again: the same x-death entry counts 2.
    broker.sendToQueue("q", dead!);
    await tick();
    c.reject(deliveries[1]!);
    expect((broker.messages("dlq")[1]!.headers!["x-death"] as Array<{ count: number }>)[0]!.count).toBe(2);
  });

  it("reject() without a dead-letter exchange drops the message", async () => {
    const { broker, consumer, publish } = setUp();
    const { c, deliveries } = consumer();
    await c.start();
    publish("1");
    await tick();
    c.reject(deliveries[0]!);
    await tick();
    expect(broker.messages("q")).toEqual([]);
    expect(broker.unacked("q")).toBe(0);
  });

  it("an ack of a delivery acked before closes the channel as RabbitMQ's 406 does: redelivered after", async () => {
    const { consumer, publish } = setUp();
    const { c, deliveries, events } = consumer();
    await c.start();
    publish("1", "2");
    await tick();
    c.ack(deliveries[0]!);
    c.ack(deliveries[0]!);
    expect(events.at(-1)).toMatchObject({ type: "disconnected", error: { message: /unknown delivery tag/ } });
    expect(c.ack(deliveries[1]!)).toBe(false); // its channel is gone
    await tick();
    await tick();
    expect(events.at(-1)).toEqual({ type: "connected" });
    expect(deliveries.slice(2).map((d) => [d.content.toString(), d.redelivered])).toEqual([["2", true]]);
  });

  it("start() fails with OutboxConfigError on a binding to a missing exchange, as RabbitMQ's 404", async () => {
    const broker = new MemoryBroker();
    const c = broker.consumer({
      queue: { name: "q", bindings: [{ exchange: "nowhere", routingKey: "#" }] },
      exchanges: [],
      prefetch: 1,
      onDelivery: () => {},
      onEvent: () => {},
    });
    await expect(c.start()).rejects.toThrow(OutboxConfigError);
    await expect(c.start()).rejects.toThrow(/already closed/);
  });

  it("sendToQueue puts a message straight into a queue, not in the publish log; a missing queue throws", async () => {
    const { broker, consumer } = setUp();
    const { c, deliveries } = consumer();
    await c.start();
    broker.sendToQueue("q", { ...message("1"), exchange: "shop", routingKey: "order.created" });
    await tick();
    expect(deliveries[0]).toMatchObject({ messageId: "1", exchange: "shop", routingKey: "order.created" });
    expect(broker.log).toEqual([]);
    expect(() => broker.sendToQueue("none", { ...message("1"), exchange: "", routingKey: "none" })).toThrow(
      OutboxConfigError,
    );
  });

  it("the default exchange routes to the queue named by the routing key; log and onPublish see every publish", () => {
    const { broker, consumer } = setUp();
    consumer(); // declares nothing until start
    broker.assertQueue("q");
    const seen: string[][] = [];
    const stop = broker.onPublish((entry) => seen.push([...entry.queues]));
    expect(broker.publish("", "q", message("1"))).toEqual(["q"]);
    expect(broker.publish("", "nope", message("2"))).toEqual([]);
    stop();
    broker.publish("", "q", message("3"));
    expect(seen).toEqual([["q"], []]);
    expect(broker.log.map((e) => e.queues)).toEqual([["q"], [], ["q"]]);
    expect(() => broker.publish("missing", "k", message("4"))).toThrow(OutboxPublishError);
  });
});

describe("MemoryBroker.transport()", () => {
  let n = 0;
  const outbound = (exchange: string, routingKey: string): OutboundMessage => ({
    messageId: `m${++n}`,
    exchange,
    routingKey,
    body: Buffer.from("{}"),
    headers: { h: 1 },
    type: "t",
    correlationId: undefined,
    createdAt: 1_700_000_000_123,
  });

  it("asserts its exchanges and the relay's at start; outcomes as AmqpTransport's: ok, NO_ROUTE, NOT_FOUND", async () => {
    const broker = new MemoryBroker();
    const transport = broker.transport({ exchanges: [{ name: "shop", type: "topic" }] });
    transport.useExchanges([{ name: "billing", type: "direct" }]);
    await transport.start();
    broker.assertQueue("orders");
    broker.bindQueue("orders", "shop", "order.*");
    const batch = [outbound("shop", "order.created"), outbound("shop", "payment.made"), outbound("nope", "k")];
    const outcomes = await transport.publish(batch, { timeoutMs: 1_000 });
    expect(outcomes[0]).toEqual({ ok: true });
    expect(outcomes[1]).toMatchObject({ ok: false, error: { message: /NO_ROUTE \(312\)/ } });
    expect(outcomes[2]).toMatchObject({ ok: false, error: { message: /NOT_FOUND 404/ } });
    expect(transport.published).toEqual([batch[0]]);
    expect(broker.messages("orders")).toEqual([
      {
        content: batch[0]!.body,
        messageId: batch[0]!.messageId,
        exchange: "shop",
        routingKey: "order.created",
        headers: { h: 1 },
        type: "t",
        correlationId: undefined,
        timestamp: 1_700_000_000_000,
      },
    ]);
    expect(broker.log.map((e) => e.queues)).toEqual([["orders"], []]);
    // The relay's exchange was declared, as direct.
    expect(() => broker.assertExchange("billing", "topic")).toThrow(OutboxConfigError);
  });

  it("start() rejects on an exchange that exists with another type; route() belongs to the standalone one", async () => {
    const broker = new MemoryBroker();
    broker.assertExchange("shop", "direct");
    const transport = broker.transport({ exchanges: [{ name: "shop", type: "topic" }] });
    await expect(transport.start()).rejects.toThrow(OutboxConfigError);
    expect(() => transport.route("shop")).toThrow(OutboxConfigError);
    expect(() => new MemoryTransport({ exchanges: [{ name: "shop", type: "topic" }] })).toThrow(OutboxConfigError);
  });

  it("keeps the failure controls: failNext nacks without routing, disconnect rejects the batch", async () => {
    const broker = new MemoryBroker();
    const transport = broker.transport({ exchanges: [{ name: "shop", type: "fanout" }] });
    await transport.start();
    broker.assertQueue("all");
    broker.bindQueue("all", "shop", "");
    transport.failNext(1);
    const outcomes = await transport.publish([outbound("shop", "a"), outbound("shop", "b")], { timeoutMs: 1_000 });
    expect(outcomes.map((o) => o.ok)).toEqual([false, true]);
    expect(broker.messages("all")).toHaveLength(1);
    transport.disconnect();
    await expect(transport.publish([outbound("shop", "c")], { timeoutMs: 1_000 })).rejects.toThrow(/not connected/);
    expect(broker.messages("all")).toHaveLength(1);
  });
});
