// Metrics and health of the relay and the inbox, read through an SDK MeterProvider registered in this process, as an
// app would; and their Prometheus text, as the CLI's /metrics serves it.
import { randomUUID } from "node:crypto";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { DataPoint, Histogram, MetricData, ResourceMetrics } from "@opentelemetry/sdk-metrics";
import amqp from "amqplib";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { toPrometheus } from "../../src/cli/prometheus.js";
import { createRelay, type Inbox, inbox, MemoryTransport, outbox, type Relay } from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { quiet } from "../support/logger.js";
import { disableTelemetry, registerMetrics, registerTracing, type SpanRecord } from "../support/otel.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { nestedHeaderTable, publishRawHeaders } from "../support/raw-headers.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const stops: Array<() => Promise<unknown>> = [];
let collect: () => Promise<ResourceMetrics>;
let spans: () => SpanRecord[];

beforeAll(() => {
  ({ collect } = registerMetrics());
  ({ spans } = registerTracing()); // the relay's publish spans, checked beside its counters
});
beforeEach(async () => {
  await pool.query('TRUNCATE outbox_message, outbox_dead_letter, inbox_message, "Effect" RESTART IDENTITY CASCADE');
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});
afterAll(async () => {
  disableTelemetry();
  await base.$disconnect();
  await pool.end();
});

function metric(all: ResourceMetrics, name: string): MetricData | undefined {
  return all.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
}
/** The value of the point whose attributes include `attributes` (0 when there is none). */
function value(all: ResourceMetrics, name: string, attributes: Record<string, string> = {}): number {
  const points = (metric(all, name)?.dataPoints ?? []) as DataPoint<number>[];
  const point = points.find((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
  return point?.value ?? 0;
}
function histogram(all: ResourceMetrics, name: string): { count: number; sum: number } {
  const points = (metric(all, name)?.dataPoints ?? []) as DataPoint<Histogram>[];
  return {
    count: points.reduce((n, p) => n + p.value.count, 0),
    sum: points.reduce((n, p) => n + (p.value.sum ?? 0), 0),
  };
}

describe("relay metrics and health", () => {
  it("counts published, retried and dead-lettered messages by exchange; batch sizes, lag; backlog gauges", async () => {
    const bound = await startCountingConsumer(amqpUrl, uniqueName("metrics"), "ok.#");
    stops.push(() => bound.close());
    const exchange = bound.exchange;
    const prisma = base.$extends(outbox({ exchange, queue: false }));
    // Not due for an hour: the backlog's deferred rows.
    await prisma.$enqueue(
      Array.from({ length: 3 }, (_, i) => ({
        routingKey: "ok.later",
        payload: i,
        availableAt: new Date(Date.now() + 3_600_000),
      })),
    );
    const relay: Relay = createRelay({
      databaseUrl: url,
      amqpUrl,
      queue: false,
      sweepIntervalMs: 100,
      sweepMinAgeMs: 0,
      maxAttempts: 2,
      retryBaseDelayMs: 20,
      retryMaxDelayMs: 20,
      logger: quiet,
    });
    stops.push(() => relay.stop());
    expect((await relay.health()).ok).toBe(false); // not started
    await relay.start();
    await prisma.$enqueue({ routingKey: "nowhere", payload: "unroutable" });
    await prisma.$enqueue(Array.from({ length: 20 }, (_, i) => ({ routingKey: `ok.${i}`, payload: i })));
    await bound.waitForDistinct(20, 15_000);
    await expect
      .poll(async () => Number((await pool.query("SELECT count(*) FROM outbox_dead_letter")).rows[0].count), {
        timeout: 15_000,
      })
      .toBe(1);

    // A PRODUCER span per publish; the unroutable message's retry went alone, and its span says it failed.
    const [poison] = (await pool.query("SELECT message_id::text FROM outbox_dead_letter")).rows;
    const publishes = spans().filter((x) => x.kind === SpanKind.PRODUCER);
    expect(publishes.length).toBeGreaterThan(0);
    const alone = publishes.find((x) => x.attributes["messaging.message.id"] === poison.message_id);
    expect(alone).toMatchObject({ name: `publish ${exchange}`, status: SpanStatusCode.ERROR });

    const all = await collect();
    const on = { "messaging.destination.name": exchange };
    expect(value(all, "prisma_outbox.relay.published", on)).toBe(20);
    expect(value(all, "prisma_outbox.relay.retries", on)).toBe(1);
    expect(value(all, "prisma_outbox.relay.dead_letters", on)).toBe(1);
    // Every claimed row is in one committed batch: 20, and the unroutable one twice.
    expect(histogram(all, "prisma_outbox.relay.batch.size").sum).toBe(22);
    expect(histogram(all, "prisma_outbox.relay.batch.duration").count).toBeGreaterThan(0);
    expect(histogram(all, "prisma_outbox.relay.lag").count).toBe(20);
    expect(value(all, "prisma_outbox.relay.backlog", { state: "due" })).toBe(0);
    expect(value(all, "prisma_outbox.relay.backlog", { state: "deferred" })).toBe(3);
    expect(value(all, "prisma_outbox.relay.oldest_due_age")).toBe(0);

    const health = await relay.health();
    expect(health).toMatchObject({
      ok: true,
      state: "running",
      database: { connected: true },
      broker: { connected: true, state: "ready" },
      backlog: { due: 0, deferred: 3, oldestDueAgeMs: 0 },
      problems: [],
    });
    expect(health.lastBatchAt).toBeInstanceOf(Date);

    // The same, as the CLI's /metrics serves it.
    const text = toPrometheus(all);
    expect(text).toContain("# TYPE prisma_outbox_relay_published_total counter");
    expect(text).toContain(`prisma_outbox_relay_published_total{messaging_destination_name="${exchange}"} 20`);
    expect(text).toContain("# TYPE prisma_outbox_relay_batch_duration_seconds histogram");
    expect(text).toMatch(/prisma_outbox_relay_batch_size_bucket\{path="[a-z]+",le="\+Inf"\} \d+/);
    expect(text).toContain('prisma_outbox_relay_backlog{state="deferred"} 3');

    await relay.stop();
    expect(await relay.health()).toMatchObject({ ok: false, state: "stopped", problems: ["the relay is stopped"] });
  });

  it("a relay that cannot publish: the due backlog and its oldest age show it, and health() is not ok", async () => {
    const prisma = base.$extends(outbox({ exchange: "blocked", queue: false }));
    await prisma.$enqueue(Array.from({ length: 4 }, (_, i) => ({ routingKey: "k", payload: i })));
    await pool.query("UPDATE outbox_message SET available_at = now() - interval '90 seconds'");
    // A broker under a resource alarm from the start: the relay runs but claims nothing, so the rows stay due.
    const transport = new MemoryTransport();
    transport.block();
    const relay = createRelay({ databaseUrl: url, transport, queue: false, logger: quiet });
    stops.push(() => relay.stop());
    await relay.start();
    const health = await relay.health();
    expect(health).toMatchObject({
      ok: false,
      state: "running",
      broker: { connected: true, state: "blocked" },
      backlog: { due: 4, deferred: 0 },
    });
    expect(health.problems).toContain("broker: blocked");
    expect(health.backlog!.oldestDueAgeMs).toBeGreaterThanOrEqual(90_000);
    const all = await collect();
    expect(value(all, "prisma_outbox.relay.backlog", { state: "due" })).toBe(4);
    expect(value(all, "prisma_outbox.relay.oldest_due_age")).toBeGreaterThanOrEqual(90);
  });
});

describe("inbox metrics and health", () => {
  it("counts received, handled, failed and dead handlings by handler; backlog gauges; health", async () => {
    const prisma = newPrismaClient(url);
    stops.push(() => prisma.$disconnect());
    const exchange = uniqueName("metrics.x");
    const queue = uniqueName("metrics.q");
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createConfirmChannel();
    stops.push(async () => {
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    });
    await channel.assertExchange(exchange, "topic", { durable: false });
    const box: Inbox = inbox<Record<string, unknown>, typeof prisma>({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      handlers: {
        effect: {
          pattern: "#",
          handle: async (message, tx) => {
            if ((message.payload as { fail?: boolean }).fail) throw new Error("failing on purpose");
            await tx.effect.create({ data: { messageId: message.messageId, handler: "effect" } });
          },
        },
      },
      maxAttempts: 2,
      sweepIntervalMs: 100,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 20,
      logger: quiet,
    });
    expect(await box.health()).toMatchObject({ ok: false, state: "idle" });
    await box.start({ databaseUrl: url, amqpUrl });
    stops.push(() => box.stop());
    const duplicate = randomUUID();
    for (let i = 0; i < 5; i++) {
      channel.publish(exchange, "order.created", Buffer.from(JSON.stringify({ n: i })), { messageId: randomUUID() });
    }
    channel.publish(exchange, "order.created", Buffer.from("{}"), { messageId: duplicate });
    channel.publish(exchange, "order.created", Buffer.from("{}"), { messageId: duplicate });
    channel.publish(exchange, "order.failed", Buffer.from('{"fail":true}'), { messageId: randomUUID() });
    await channel.waitForConfirms();
    await expect
      .poll(
        async () =>
          Number((await pool.query("SELECT count(*) FROM inbox_message WHERE status = 'dead'")).rows[0].count),
        {
          timeout: 15_000,
        },
      )
      .toBe(1);
    await expect
      .poll(async () => Number((await pool.query('SELECT count(*) FROM "Effect"')).rows[0].count), { timeout: 15_000 })
      .toBe(6);

    const q = { "messaging.destination.subscription.name": queue };
    const h = { ...q, "messaging.consumer.group.name": "effect" };
    // The deliveries can be several batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES), and a batch is
    // counted once acked, after the batch before it: one holding only the duplicate may end after the rows above are
    // handled, so every delivery is waited for in the counters too.
    const counted = (m: ResourceMetrics) =>
      value(m, "prisma_outbox.inbox.received", { ...q, outcome: "stored" }) +
      value(m, "prisma_outbox.inbox.received", { ...q, outcome: "duplicate" });
    await expect.poll(async () => counted(await collect()), { timeout: 15_000 }).toBe(8);
    const all = await collect();
    expect(value(all, "prisma_outbox.inbox.received", { ...q, outcome: "stored" })).toBe(7);
    expect(value(all, "prisma_outbox.inbox.received", { ...q, outcome: "duplicate" })).toBe(1);
    expect(value(all, "prisma_outbox.inbox.handled", h)).toBe(6);
    expect(value(all, "prisma_outbox.inbox.failed", h)).toBe(1);
    expect(value(all, "prisma_outbox.inbox.dead", h)).toBe(1);
    expect(histogram(all, "prisma_outbox.inbox.handle.duration").count).toBe(6);
    expect(value(all, "prisma_outbox.inbox.backlog", { ...q, state: "due" })).toBe(0);
    // Everything received was stored.
    expect(value(all, "prisma_outbox.inbox.unstored", q)).toBe(0);

    const health = await box.health();
    expect(health.receiving).toEqual({ unstored: 0, stalledSince: undefined });
    expect(health).toMatchObject({
      ok: true,
      state: "running",
      database: { connected: true },
      broker: { connected: true },
      backlog: { due: 0 },
    });
    await box.stop();
    expect(await box.health()).toMatchObject({ ok: false, state: "stopped" });
  });

  it("a delivery that drops the connection on every reconnection (no header guard): one error log, health not ok, counted", async () => {
    const prisma = newPrismaClient(url);
    stops.push(() => prisma.$disconnect());
    const queue = uniqueName("metrics.poison");
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createChannel();
    stops.push(async () => {
      await channel.deleteQueue(queue).catch(() => {});
      await connection.close();
    });
    await channel.assertQueue(queue, { durable: true });
    const poison = nestedHeaderTable(9_000);
    await publishRawHeaders(connection, channel, "", queue, poison, "poison-1", Buffer.from("{}"));
    const errors: string[] = [];
    const box: Inbox = inbox<Record<string, unknown>, typeof prisma>({
      prisma,
      queue: { name: queue },
      handlers: { effect: { pattern: "#", handle: async () => {} } },
      logger: { ...quiet, error: (message: string) => errors.push(message) },
      // As with an amqplib the header guard does not know (transport/amqp/header-guard.ts).
      guardHeaders: false,
    } as never);
    await box.start({ databaseUrl: url, amqpUrl });
    stops.push(() => box.stop());
    const q = { "messaging.destination.subscription.name": queue };
    await expect
      .poll(async () => value(await collect(), "prisma_outbox.inbox.decode_failures", q), { timeout: 20_000 })
      .toBeGreaterThanOrEqual(5);
    const health = await box.health();
    expect(health.ok).toBe(false);
    expect(health.problems).toContainEqual(
      expect.stringMatching(new RegExp(`drops on every reconnection .*heads queue "${queue}"`)),
    );
    // Said once when the loop began, not on every turn of it.
    expect(errors.filter((e) => /drops on every reconnection/.test(e))).toHaveLength(1);
    expect(errors.join("\n")).not.toMatch(/guest/);
  });
});
