// The RabbitMQ transport against a real broker; network faults come from a TCP proxy between the two.
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { setTimeout as delay } from "node:timers/promises";
import { inspect } from "node:util";
import { type ChannelModel, type ConsumeMessage, connect } from "amqplib";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, onTestFinished } from "vitest";
import { OutboxConfigError, OutboxPublishError } from "../../src/errors.js";
import { AmqpTransport, type AmqpTransportOptions, redactUrl } from "../../src/transport/amqp.js";
import type { OutboundMessage, PublishOutcome, TransportEvent } from "../../src/transport/transport.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { until as waitFor } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const amqplibExports = createRequire(import.meta.url)("amqplib") as { connect: typeof connect };
const brokerAddress = new URL(amqpUrl);

let admin: ChannelModel;
const exchanges = new Set<string>();
const queues = new Set<string>();
let transports: AmqpTransport[] = [];
let proxies: TcpProxy[] = [];

beforeAll(async () => {
  admin = await connect(amqpUrl);
});

afterEach(async () => {
  await Promise.all(transports.map((transport) => transport.close()));
  await Promise.all(proxies.map((proxy) => proxy.close()));
  transports = [];
  proxies = [];
});

afterAll(async () => {
  const channel = await admin.createChannel();
  for (const queue of queues) await channel.deleteQueue(queue);
  for (const exchange of exchanges) await channel.deleteExchange(exchange);
  await admin.close();
});

function uniqueName(what: string): string {
  return `outbox-test.${what}.${randomUUID().slice(0, 8)}`;
}

/** An exchange with a queue bound to it by `routingKey`, both deleted after the file's tests. */
async function exchangeWithQueue(
  routingKey = "k",
  queueArguments: Record<string, unknown> = {},
): Promise<{ exchange: string; queue: string }> {
  const exchange = uniqueName("exchange");
  const queue = uniqueName("queue");
  exchanges.add(exchange);
  queues.add(queue);
  const channel = await admin.createChannel();
  await channel.assertExchange(exchange, "direct", { durable: true });
  await channel.assertQueue(queue, { durable: true, arguments: queueArguments });
  await channel.bindQueue(queue, exchange, routingKey);
  await channel.close();
  return { exchange, queue };
}

function newTransport(options: Partial<AmqpTransportOptions> = {}): {
  transport: AmqpTransport;
  events: TransportEvent[];
} {
  const transport = new AmqpTransport({
    url: amqpUrl,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    connectTimeoutMs: 1_000,
    ...options,
  });
  transports.push(transport);
  const events: TransportEvent[] = [];
  transport.onEvent((event) => events.push(event));
  return { transport, events };
}

async function newProxy(): Promise<TcpProxy> {
  const proxy = await startTcpProxy({
    targetHost: brokerAddress.hostname,
    targetPort: Number(brokerAddress.port || 5672),
  });
  proxies.push(proxy);
  return proxy;
}

function message(exchange: string, routingKey: string, extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    messageId: randomUUID(),
    exchange,
    routingKey,
    body: Buffer.from(JSON.stringify({ at: Date.now() })),
    headers: undefined,
    type: undefined,
    correlationId: undefined,
    createdAt: Date.now(),
    ...extra,
  };
}

async function receive(queue: string, count: number): Promise<ConsumeMessage[]> {
  const channel = await admin.createChannel();
  const received: ConsumeMessage[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`received ${received.length} of ${count} messages`)), 20_000);
    void channel.consume(
      queue,
      (delivered) => {
        if (delivered) received.push(delivered);
        if (received.length === count) {
          clearTimeout(timer);
          resolve();
        }
      },
      { noAck: true },
    );
  });
  await channel.close();
  return received;
}

const until = (condition: () => boolean) => waitFor(condition, 10_000, 10);

const ok: PublishOutcome = { ok: true };

describe("AmqpTransport options", () => {
  it("rejects invalid options with OutboxConfigError, never showing the password", () => {
    expect(() => new AmqpTransport({ url: "http://user:hunter2-secret@host" })).toThrow(
      /Expected `url` to be an amqp:\/\/ or amqps:\/\/ URL, got http:\/\/user:\*\*\*@host/,
    );
    expect(() => new AmqpTransport({ url: "not a url hunter2@x" })).toThrow(OutboxConfigError);
    expect(() => new AmqpTransport({ url: "not a url hunter2@x" })).not.toThrow(/hunter2/);
    expect(() => new AmqpTransport({ url: amqpUrl, heartbeatSeconds: -1 })).toThrow(/`heartbeatSeconds`/);
    expect(() => new AmqpTransport({ url: amqpUrl, reconnect: { initialDelayMs: 500, maxDelayMs: 100 } })).toThrow(
      /`reconnect.maxDelayMs` to be a number from 500 to/,
    );
    expect(() => new AmqpTransport({ url: amqpUrl, exchanges: [{ name: "x", type: "fan" as "fanout" }] })).toThrow(
      OutboxConfigError,
    );
  });

  it("redacts the password of URLs", () => {
    expect(redactUrl("amqp://guest:guest@127.0.0.1:5672/vhost")).toBe("amqp://guest:***@127.0.0.1:5672/vhost");
    expect(redactUrl("amqps://broker.example")).toBe("amqps://broker.example");
    expect(redactUrl("amqp://u:p@ss@wrong url")).toBe("amqp://***@wrong url");
  });
});

describe("AmqpTransport against RabbitMQ", () => {
  it("publishes 1,000 messages with confirms, each received with its properties", async () => {
    const { exchange, queue } = await exchangeWithQueue();
    const { transport, events } = newTransport({ exchanges: [{ name: exchange, type: "direct" }] });
    await transport.start();
    expect(transport.state).toBe("connected");
    expect(events).toEqual([{ type: "connected" }]);

    const createdAt = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
    const messages = Array.from({ length: 1_000 }, (_, i) =>
      message(exchange, "k", {
        body: Buffer.from(JSON.stringify({ i })),
        headers: { tenant: "acme", attempt: i, vip: i % 2 === 0, none: null },
        type: "order.created",
        correlationId: `c-${i}`,
        createdAt,
      }),
    );
    const outcomes = await transport.publish(messages, { timeoutMs: 20_000 });
    expect(outcomes).toEqual(messages.map(() => ok));

    const received = await receive(queue, 1_000);
    received.forEach((delivered, i) => {
      const sent = messages[i]!;
      expect(JSON.parse(delivered.content.toString())).toEqual({ i });
      expect(delivered.fields.exchange).toBe(exchange);
      expect(delivered.fields.routingKey).toBe("k");
      expect(delivered.properties).toMatchObject({
        messageId: sent.messageId,
        timestamp: Math.floor(createdAt / 1000),
        contentType: "application/json",
        type: "order.created",
        correlationId: `c-${i}`,
        deliveryMode: 2,
        headers: { tenant: "acme", attempt: i, vip: i % 2 === 0, none: null },
      });
    });
  });

  it("waits for drain when the channel's buffer is full, with concurrent batches", async () => {
    const spy = spyOnConnections();
    const { exchange, queue } = await exchangeWithQueue();
    const { transport } = newTransport();
    await transport.start();
    const batches = Array.from({ length: 4 }, () => Array.from({ length: 2_000 }, () => message(exchange, "k")));
    const results = await Promise.all(batches.map((batch) => transport.publish(batch, { timeoutMs: 30_000 })));
    expect(results.flat()).toEqual(batches.flat().map(() => ok));
    expect(spy.sent).toBe(8_000);
    expect(spy.full).toBeGreaterThan(0);
    const channel = await admin.createChannel();
    expect((await channel.checkQueue(queue)).messageCount).toBe(8_000);
    await channel.close();
  });

  it("holds publishes while the broker blocks the connection (resource alarm)", async () => {
    const spy = spyOnConnections();
    const { exchange } = await exchangeWithQueue();
    const { transport, events } = newTransport();
    await transport.start();
    // What amqplib emits on connection.blocked; really blocking the shared broker would stall other test files.
    spy.models[0]!.emit("blocked", "low on memory");
    expect(transport.state).toBe("blocked");
    expect(events.at(-1)).toEqual({ type: "blocked", reason: "low on memory" });
    await expect(transport.publish([message(exchange, "k")], { timeoutMs: 100 })).rejects.toThrow(/timed out/);
    const waiting = transport.publish([message(exchange, "k")], { timeoutMs: 10_000 });
    await delay(100);
    expect(spy.sent).toBe(0);
    spy.models[0]!.emit("unblocked");
    expect(await waiting).toEqual([ok]);
    expect(transport.state).toBe("connected");
    expect(events.map((event) => event.type)).toEqual(["connected", "blocked", "unblocked"]);
  });

  it("fails only the unroutable messages and the ones to a missing exchange, in concurrent batches", async () => {
    const { exchange, queue } = await exchangeWithQueue("routed");
    const missing = uniqueName("missing");
    const { transport } = newTransport();
    await transport.start();

    const batches = Array.from({ length: 5 }, () => [
      message(exchange, "routed"),
      message(exchange, "nowhere"),
      message(missing, "routed"),
      message(exchange, "routed"),
    ]);
    const results = await Promise.all(batches.map((batch) => transport.publish(batch, { timeoutMs: 10_000 })));
    for (const outcomes of results) {
      expect(outcomes[0]).toEqual(ok);
      expect(outcomes[1]).toMatchObject({ ok: false, error: expect.any(OutboxPublishError) });
      expect(outcomes[1]?.ok === false && outcomes[1].error.message).toBe(
        `unroutable: exchange ${exchange} routing key nowhere returned NO_ROUTE (312)`,
      );
      expect(outcomes[2]?.ok === false && outcomes[2].error.message).toMatch(
        new RegExp(`exchange \`${missing.replaceAll(".", "\\.")}\` does not exist \\(NOT_FOUND 404\\)`),
      );
      expect(outcomes[3]).toEqual(ok);
    }
    const channel = await admin.createChannel();
    expect((await channel.checkQueue(queue)).messageCount).toBe(10);
    await channel.close();
    expect(transport.state).toBe("connected");
  });

  it("reports nacked messages one by one", async () => {
    const { exchange } = await exchangeWithQueue("k", { "x-max-length": 1, "x-overflow": "reject-publish" });
    const { transport } = newTransport();
    await transport.start();
    const outcomes = await transport.publish([message(exchange, "k"), message(exchange, "k")], { timeoutMs: 10_000 });
    expect(outcomes[0]).toEqual(ok);
    expect(outcomes[1]?.ok === false && outcomes[1].error).toBeInstanceOf(OutboxPublishError);
    expect(outcomes[1]?.ok === false && outcomes[1].error.message).toMatch(/^broker nacked message /);
  });

  it("recovers its channel when an exchange is deleted after it was checked", async () => {
    const { exchange: doomed } = await exchangeWithQueue();
    const { exchange: kept } = await exchangeWithQueue();
    const { transport, events } = newTransport();
    await transport.start();
    expect(await transport.publish([message(doomed, "k")], { timeoutMs: 10_000 })).toEqual([ok]);

    const channel = await admin.createChannel();
    await channel.deleteExchange(doomed);
    await channel.close();

    // The transport believes the exchange exists: the broker closes the channel, the batch in flight rejects.
    await expect(transport.publish([message(doomed, "k")], { timeoutMs: 10_000 })).rejects.toThrow(
      /channel lost before every confirm arrived: .*404 \(NOT-FOUND\)/,
    );
    // Retried, the batch gets one outcome per message, on a new channel of the same connection.
    const outcomes = await transport.publish([message(doomed, "k"), message(kept, "k")], { timeoutMs: 10_000 });
    expect(outcomes[0]?.ok === false && outcomes[0].error.message).toMatch(/does not exist \(NOT_FOUND 404\)/);
    expect(outcomes[1]).toEqual(ok);
    expect(events.map((event) => event.type)).toEqual(["connected"]);
  });

  it("rejects start() with OutboxConfigError when an exchange exists with other settings", async () => {
    const exchange = uniqueName("conflict");
    exchanges.add(exchange);
    const channel = await admin.createChannel();
    await channel.assertExchange(exchange, "topic", { durable: true });
    await channel.close();

    const { transport } = newTransport({ exchanges: [{ name: exchange, type: "direct" }] });
    const error = await transport.start().catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(OutboxConfigError);
    expect((error as Error).message).toMatch(
      new RegExp(`^exchange \`${exchange.replaceAll(".", "\\.")}\` exists with other settings \\(type/durable\\)`),
    );
    expect((error as Error).message).toMatch(/inequivalent arg 'type'.*; delete it or change the configuration$/);
    expect(transport.state).toBe("idle");
  });

  it("asserts the configured exchanges on start", async () => {
    const exchange = uniqueName("asserted");
    exchanges.add(exchange);
    const { transport } = newTransport({ exchanges: [{ name: exchange, type: "fanout", durable: false }] });
    await transport.start();
    const channel = await admin.createChannel();
    await channel.checkExchange(exchange);
    await channel.close();
  });

  it("rejects start() with OutboxConfigError when the broker refuses the credentials or the virtual host", async () => {
    const url = new URL(amqpUrl);
    url.password = "wrong-Pa55word";
    const { transport } = newTransport({ url: url.toString() });
    const error = await transport.start().catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(OutboxConfigError);
    expect((error as Error).message).toMatch(/refused the credentials \(ACCESS_REFUSED 403\)/);
    expect(inspect(error)).not.toContain("wrong-Pa55word");

    const vhost = new URL(amqpUrl);
    vhost.pathname = `/${uniqueName("no-vhost")}`;
    const { transport: other } = newTransport({ url: vhost.toString() });
    await expect(other.start()).rejects.toThrow(/refused to open the virtual host/);
  });

  it("waits at start for a broker that cannot be reached, then connects", async () => {
    const proxy = await newProxy();
    proxy.cut();
    const { exchange } = await exchangeWithQueue();
    const { transport, events } = newTransport({ url: proxy.url(amqpUrl) });
    let started = false;
    const starting = transport.start().then(() => {
      started = true;
    });
    // Published before the connection: waits for it.
    const early = transport.publish([message(exchange, "k")], { timeoutMs: 10_000 });
    await until(() => events.filter((event) => event.type === "reconnecting").length >= 3);
    expect(started).toBe(false);
    expect(["connecting", "disconnected"]).toContain(transport.state);
    const reconnecting = events.find((event) => event.type === "reconnecting");
    expect(reconnecting).toMatchObject({ attempt: 1, delayMs: expect.any(Number), error: expect.any(Error) });

    proxy.restore();
    await starting;
    expect(transport.state).toBe("connected");
    expect(events.at(-1)).toEqual({ type: "connected" });
    expect(await early).toEqual([ok]);
  });

  it("gives up a connection attempt that hangs after connectTimeoutMs, and retries", async () => {
    const proxy = await newProxy();
    proxy.blackhole();
    const { transport, events } = newTransport({ url: proxy.url(amqpUrl), connectTimeoutMs: 200 });
    const starting = transport.start();
    await until(() => events.some((event) => event.type === "reconnecting"));
    expect(events[0]).toMatchObject({ type: "reconnecting", error: { message: expect.stringMatching(/ETIMEDOUT/) } });
    proxy.restore();
    await starting;
    expect(transport.state).toBe("connected");
  });

  it("rejects the batch in flight when the connection is cut, reconnects by itself and publishes again", async () => {
    const proxy = await newProxy();
    const { exchange, queue } = await exchangeWithQueue();
    const { transport, events } = newTransport({
      url: proxy.url(amqpUrl),
      exchanges: [{ name: exchange, type: "direct" }],
    });
    await transport.start();
    expect(await transport.publish([message(exchange, "k")], { timeoutMs: 10_000 })).toEqual([ok]);

    const batch = Array.from({ length: 5_000 }, () => message(exchange, "k"));
    const inFlight = transport.publish(batch, { timeoutMs: 20_000 }).catch((thrown: unknown) => thrown);
    await new Promise((resolve) => setImmediate(resolve));
    proxy.cut();
    const error = await inFlight;
    expect(error).toBeInstanceOf(OutboxPublishError);
    expect((error as Error).message).toMatch(/^connection lost before every confirm arrived/);

    // While the broker cannot be reached, publishes wait for the reconnection.
    await until(() => events.some((event) => event.type === "reconnecting"));
    const waiting = transport.publish([message(exchange, "k", { messageId: "after-the-cut" })], { timeoutMs: 10_000 });
    await delay(200);
    expect(["connecting", "disconnected"]).toContain(transport.state);
    proxy.restore();
    expect(await waiting).toEqual([ok]);
    expect(transport.state).toBe("connected");

    const types = events.map((event) => event.type);
    expect(types[0]).toBe("connected");
    expect(types[1]).toBe("disconnected");
    expect(types.slice(2, -1).every((type) => type === "reconnecting")).toBe(true);
    expect(types.at(-1)).toBe("connected");
    const attempts = events.flatMap((event) => (event.type === "reconnecting" ? [event.attempt] : []));
    expect(attempts).toEqual(attempts.map((_, i) => i + 1));
    expect(events.every((event) => event.type !== "reconnecting" || (event.delayMs >= 0 && event.delayMs <= 200))).toBe(
      true,
    );

    // The message published after the cut is in the queue (with whatever part of the cut batch got through).
    const channel = await admin.createChannel();
    await channel.purgeQueue(queue);
    await channel.close();
    expect(await transport.publish([message(exchange, "k")], { timeoutMs: 10_000 })).toEqual([ok]);
    expect((await receive(queue, 1)).length).toBe(1);
  });

  it("notices a silently dead connection by its heartbeats, and publishes after reconnecting", async () => {
    const proxy = await newProxy();
    const { exchange } = await exchangeWithQueue();
    const { transport, events } = newTransport({ url: proxy.url(amqpUrl), heartbeatSeconds: 1 });
    await transport.start();
    proxy.blackhole();
    // The exchange is not known yet: the publish is still checking it when the connection dies, so it waits.
    const publishing = transport.publish([message(exchange, "k")], { timeoutMs: 20_000 });
    await until(() => events.some((event) => event.type === "disconnected"));
    proxy.restore();
    expect(await publishing).toEqual([ok]);
    expect(events.at(-1)).toEqual({ type: "connected" });
  });

  it("rejects a batch whose confirms do not arrive within timeoutMs, and goes on afterwards", async () => {
    const proxy = await newProxy();
    const { exchange } = await exchangeWithQueue();
    const { transport } = newTransport({ url: proxy.url(amqpUrl) });
    await transport.start();
    expect(await transport.publish([message(exchange, "k")], { timeoutMs: 10_000 })).toEqual([ok]);
    proxy.blackhole();
    const startedAt = Date.now();
    await expect(transport.publish([message(exchange, "k")], { timeoutMs: 300 })).rejects.toThrow(
      new OutboxPublishError("publish timed out after 300 ms before every confirm arrived", { reason: "timeout" }),
    );
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    // The late confirms of the timed-out batch arrive now and are ignored.
    proxy.restore();
    expect(await transport.publish([message(exchange, "k")], { timeoutMs: 10_000 })).toEqual([ok]);
  });

  it("times out a publish while never connected", async () => {
    const { transport } = newTransport();
    await expect(transport.publish([message("x", "k")], { timeoutMs: 50 })).rejects.toThrow(/timed out after 50 ms/);
  });

  it("rejects a batch when its signal aborts", async () => {
    const proxy = await newProxy();
    const { exchange } = await exchangeWithQueue();
    const { transport } = newTransport({ url: proxy.url(amqpUrl) });
    await transport.start();
    proxy.blackhole();
    const controller = new AbortController();
    const publishing = transport.publish([message(exchange, "k")], { timeoutMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stopping")), 100);
    const error = await publishing.catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(OutboxPublishError);
    expect(error).toMatchObject({ message: "publish aborted", cause: new Error("stopping") });

    await expect(
      transport.publish([message(exchange, "k")], { timeoutMs: 10_000, signal: AbortSignal.abort() }),
    ).rejects.toThrow("publish aborted");
  });

  it("close() rejects pending publishes, is idempotent and leaves no socket or timer behind", async () => {
    const resourcesBefore = countResources();
    const proxy = await newProxy();
    const { exchange } = await exchangeWithQueue();
    const { transport } = newTransport({ url: proxy.url(amqpUrl), connectTimeoutMs: 300 });
    await transport.start();
    proxy.blackhole();
    const pending = transport
      .publish([message(exchange, "k")], { timeoutMs: 10_000 })
      .catch((thrown: unknown) => thrown);
    await delay(50);

    const closing = transport.close();
    expect(transport.close()).toBe(closing);
    expect(await pending).toEqual(new OutboxPublishError("transport closed", { reason: "closed" }));
    await closing;
    expect(transport.state).toBe("closed");
    await expect(transport.publish([message(exchange, "k")], { timeoutMs: 1_000 })).rejects.toThrow("transport closed");
    await expect(transport.start()).rejects.toThrow("transport closed before it connected");

    // The transport dropped its socket; the proxy, holding traffic, cannot notice until it is closed.
    await proxy.close();
    await until(() => {
      const after = countResources();
      return after.sockets <= resourcesBefore.sockets && after.timers <= resourcesBefore.timers;
    });
  });

  it("close() during start() stops the retries", async () => {
    const proxy = await newProxy();
    proxy.cut();
    const { transport, events } = newTransport({ url: proxy.url(amqpUrl) });
    const starting = transport.start().catch((thrown: unknown) => thrown);
    await until(() => events.length >= 2);
    await transport.close();
    expect(await starting).toMatchObject({ message: "transport closed before it connected" });
    const count = events.length;
    await delay(300);
    expect(events.length).toBe(count);
  });

  it("never shows the password in errors or events", async () => {
    const proxy = await newProxy();
    proxy.cut();
    const secret = "S3cr%40t-never-shown";
    const url = new URL(proxy.url(amqpUrl));
    url.password = secret;
    const { transport, events } = newTransport({ url: url.toString() });
    const starting = transport.start().catch((thrown: unknown) => thrown);
    await until(() => events.length >= 3);
    const failed = await transport.publish([message("x", "k")], { timeoutMs: 100 }).catch((thrown: unknown) => thrown);
    await transport.close();
    const seen = inspect({ events, failed, starting: await starting }, { depth: null, showHidden: true });
    expect(seen).toMatch(/reconnecting/);
    expect(seen).not.toContain(secret);
    expect(seen).not.toContain(decodeURIComponent(secret));
  });

  it("survives an event listener that throws", async () => {
    const { exchange } = await exchangeWithQueue();
    const { transport } = newTransport();
    transport.onEvent(() => {
      throw new Error("listener bug");
    });
    await transport.start();
    expect(await transport.publish([message(exchange, "k")], { timeoutMs: 10_000 })).toEqual([ok]);
  });
});

/**
 * Spies on the connections transports open from now on: the transport loads the same amqplib module, whose exports
 * object can be patched. Counts publishes, and those that found the channel's buffer full.
 */
function spyOnConnections(): { models: ChannelModel[]; sent: number; full: number } {
  const spy = { models: [] as ChannelModel[], sent: 0, full: 0 };
  const original = amqplibExports.connect;
  amqplibExports.connect = (async (...args: Parameters<typeof connect>) => {
    const model = await original(...args);
    spy.models.push(model);
    const createConfirmChannel = model.createConfirmChannel.bind(model);
    model.createConfirmChannel = async (options) => {
      const channel = await createConfirmChannel(options);
      const publish = channel.publish.bind(channel);
      channel.publish = (...publishArgs) => {
        const sent = publish(...publishArgs);
        spy.sent++;
        if (!sent) spy.full++;
        return sent;
      };
      return channel;
    };
    return model;
  }) as typeof connect;
  onTestFinished(() => {
    amqplibExports.connect = original;
  });
  return spy;
}

function countResources(): { sockets: number; timers: number } {
  const resources = process.getActiveResourcesInfo();
  return {
    sockets: resources.filter((resource) => resource === "TCPSocketWrap").length,
    timers: resources.filter((resource) => resource === "Timeout").length,
  };
}
