// Trace context through the outbox: stored at write time, published as AMQP headers, continued by the inbox handler.
// The chain is proven across processes: this process writes inside a root span, a `prisma-outbox worker` process
// publishes, a `prisma-outbox inbox` process handles; each child registers an SDK with an in-memory exporter
// (fixtures/otel-child.ts) and writes its spans to a file at exit.
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import amqp from "amqplib";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { inbox, outbox, requests } from "../../src/index.js";
import { cliProcesses } from "../support/cli.js";
import { uniqueName } from "../support/consumer.js";
import { disableTelemetry, registerTracing, type SpanRecord } from "../support/otel.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const dir = mkdtempSync(join(tmpdir(), "prisma-outbox-spans-"));
const processes = cliProcesses();

type Row = { message_id: string; headers: Record<string, unknown> | null };
const outboxRows = async () =>
  (await pool.query<Row>("SELECT message_id::text, headers FROM outbox_message ORDER BY id")).rows;

afterEach(async () => {
  processes.killAll();
  await pool.query(
    'TRUNCATE outbox_message, inbox_message, outbox_request, "Effect", "Order" RESTART IDENTITY CASCADE',
  );
});
afterAll(async () => {
  disableTelemetry();
  rmSync(dir, { recursive: true, force: true });
  await base.$disconnect();
  await pool.end();
});

describe("without an SDK", () => {
  it("$enqueue and declared events store no trace headers", async () => {
    const prisma = base.$extends(
      outbox<typeof base>({ exchange: "x", queue: false, events: { Order: { create: true } } }),
    );
    await prisma.$enqueue({ routingKey: "k", payload: 1 });
    await prisma.order.create({ data: { number: "n0", amount: 1 } });
    expect((await outboxRows()).map((r) => r.headers)).toEqual([null, null]);
  });
});

describe("with an SDK registered", () => {
  it("stores the active context with each message; nothing outside a span; a writer's own traceparent wins", async () => {
    const { tracer } = registerTracing();
    try {
      const prisma = base.$extends(
        outbox<typeof base>({ exchange: "x", queue: false, events: { Order: { create: true } } }),
      );
      const ids = await tracer.startActiveSpan("request", async (span) => {
        const first = await prisma.$enqueue([
          { routingKey: "a", payload: 1, headers: { tenant: "t1" } },
          { routingKey: "b", payload: 2 },
        ]);
        // In an interactive transaction: a declared event and $enqueue, on the transaction's client.
        await prisma.$transaction(async (tx) => {
          await tx.order.create({ data: { number: "n1", amount: 1 } });
          await tx.$enqueue({ routingKey: "c", payload: 3 });
        });
        // Outside a transaction: the declared event opens its own.
        await prisma.order.create({ data: { number: "n2", amount: 1 } });
        await prisma.$enqueue({ routingKey: "own", payload: 4, headers: { traceparent: "mine" } });
        span.end();
        return { first, span: span.spanContext() };
      });
      await prisma.$enqueue({ routingKey: "outside", payload: 5 });
      const rows = await outboxRows();
      expect(rows).toHaveLength(7);
      const expected = `00-${ids.span.traceId}-${ids.span.spanId}-01`;
      for (const row of rows.slice(0, 5)) expect(row.headers?.traceparent).toBe(expected);
      expect(rows[0]!.headers).toEqual({ traceparent: expected, tenant: "t1" });
      expect(rows[5]!.headers).toEqual({ traceparent: "mine" });
      expect(rows[6]!.headers).toBeNull();
    } finally {
      disableTelemetry();
    }
  });

  it("a request submitted in a span carries its context (submit writes through $enqueue)", async () => {
    const { tracer } = registerTracing();
    try {
      const prisma = base.$extends(outbox<typeof base>({ exchange: "x", queue: false }));
      const reqs = requests<typeof prisma>({ prisma, exchange: "x", logger: { info() {}, warn() {}, error() {} } });
      const sc = await tracer.startActiveSpan("POST /reports", async (span) => {
        await reqs.submit("report", { month: "2026-11" });
        span.end();
        return span.spanContext();
      });
      expect((await outboxRows())[0]!.headers).toEqual({ traceparent: `00-${sc.traceId}-${sc.spanId}-01` });
    } finally {
      disableTelemetry();
    }
  });

  it("without a registered propagator, still writes W3C traceparent", async () => {
    const { tracer } = registerTracing({ propagator: false });
    try {
      const prisma = base.$extends(outbox({ exchange: "x", queue: false }));
      const sc = await tracer.startActiveSpan("request", async (span) => {
        await prisma.$enqueue({ routingKey: "k", payload: 1 });
        span.end();
        return span.spanContext();
      });
      expect((await outboxRows())[0]!.headers).toEqual({ traceparent: `00-${sc.traceId}-${sc.spanId}-01` });
    } finally {
      disableTelemetry();
    }
  });
});

describe("inbox, in this process", () => {
  it("a delivery from any publisher with a traceparent: each attempt is a CONSUMER span under it, a failed one marked", async () => {
    const { spans } = registerTracing();
    const exchange = uniqueName("trace.in.x");
    const queue = uniqueName("trace.in.q");
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createConfirmChannel();
    const prisma = newPrismaClient(url);
    let attempts = 0;
    const box = inbox<Record<string, unknown>, typeof prisma>({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      exchanges: [{ name: exchange, type: "topic", durable: false }],
      handlers: {
        flaky: {
          pattern: "#",
          handle: async () => {
            attempts++;
            if (attempts === 1) throw new TypeError("first attempt fails");
          },
        },
      },
      sweepIntervalMs: 50,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 10,
      logger: { info() {}, warn() {}, error() {} },
    });
    try {
      await box.start({ databaseUrl: url, amqpUrl });
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const parent = "00f067aa0ba902b7";
      channel.publish(exchange, "thing.done", Buffer.from("{}"), {
        messageId: randomUUID(),
        headers: { traceparent: `00-${traceId}-${parent}-01`, tracestate: "vendor=1" },
      });
      await channel.waitForConfirms();
      await expect.poll(() => spans().filter((x) => x.kind === SpanKind.CONSUMER).length, { timeout: 15_000 }).toBe(2);
      const [failed, handled] = spans().filter((x) => x.kind === SpanKind.CONSUMER);
      for (const span of [failed!, handled!]) {
        expect(span).toMatchObject({ traceId, parentSpanId: parent, name: `process ${exchange}` });
      }
      expect(failed).toMatchObject({ status: SpanStatusCode.ERROR, attributes: { "error.type": "TypeError" } });
      expect(failed!.attributes["prisma_outbox.inbox.attempt"]).toBe(1);
      expect(handled!.status).not.toBe(SpanStatusCode.ERROR);
      expect(handled!.attributes["prisma_outbox.inbox.attempt"]).toBe(2);
    } finally {
      await box.stop();
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
      await prisma.$disconnect();
      disableTelemetry();
    }
  });
});

const cli = (args: string[], env: Record<string, string>, spansFile: string) =>
  processes.start(args, { SPANS_FILE: spansFile, ...env }, { imports: ["./test/telemetry/fixtures/otel-child.ts"] });

const readSpans = (file: string): SpanRecord[] => JSON.parse(readFileSync(file, "utf8"));

describe("across processes: writer -> worker -> inbox", () => {
  it.each([
    ["W3C propagator registered", "0"],
    ["no propagator registered in the children", "1"],
  ])("one trace from the writer's span to the handler (%s)", async (_name, noPropagator) => {
    const exchange = uniqueName("trace.x");
    const queue = uniqueName("trace.q");
    const workerSpans = join(dir, `${queue}.worker.json`);
    const inboxSpans = join(dir, `${queue}.inbox.json`);
    const env = { DATABASE_URL: url, AMQP_URL: amqpUrl, OTEL_NO_PROPAGATOR: noPropagator };
    const inboxCli = cli(
      ["inbox", "--handlers", "./test/telemetry/fixtures/traced-handlers.ts"],
      { ...env, INBOX_QUEUE: queue, INBOX_EXCHANGE: exchange },
      inboxSpans,
    );
    const connection = await amqp.connect(amqpUrl);
    try {
      await expect.poll(() => inboxCli.out.stdout, { timeout: 30_000 }).toContain("inbox started");
      const worker = cli(["worker"], env, workerSpans);
      await expect.poll(() => worker.out.stdout, { timeout: 30_000 }).toContain("relay started");

      const { tracer } = registerTracing();
      let rootSpan: { traceId: string; spanId: string };
      try {
        const prisma = base.$extends(
          outbox<typeof base>({ exchange, queue: false, events: { Order: { create: true } } }),
        );
        rootSpan = await tracer.startActiveSpan("POST /orders", async (span) => {
          await prisma.order.create({ data: { number: "t1", amount: 5 } }); // declared event: order.created
          await prisma.$enqueue({ routingKey: "order.noted", payload: { n: 1 } });
          span.end();
          return span.spanContext();
        });
      } finally {
        disableTelemetry();
      }

      const effects = async () =>
        (
          await pool.query<{ messageId: string; payload: { traceId: string; spanId: string; routingKey: string } }>(
            'SELECT "messageId", payload FROM "Effect" ORDER BY id',
          )
        ).rows;
      await expect.poll(async () => (await effects()).length, { timeout: 30_000 }).toBe(2);
      // The inbox stored the delivery's headers: the writer's context, as published.
      const stored = await pool.query<{ headers: Record<string, string> }>("SELECT headers FROM inbox_message");
      for (const row of stored.rows) {
        expect(row.headers.traceparent).toBe(`00-${rootSpan.traceId}-${rootSpan.spanId}-01`);
      }

      worker.child.kill("SIGTERM");
      inboxCli.child.kill("SIGTERM");
      expect(await worker.exited).toBe(0);
      expect(await inboxCli.exited).toBe(0);

      // The worker: PRODUCER spans linked to the writer's span, one link per message.
      const published = readSpans(workerSpans).filter((s) => s.kind === SpanKind.PRODUCER);
      const links = published.flatMap((s) => s.links);
      expect(links).toHaveLength(2);
      for (const link of links) expect(link).toEqual({ traceId: rootSpan.traceId, spanId: rootSpan.spanId });
      for (const span of published) {
        expect(span.name).toBe(`publish ${exchange}`);
        expect(span.attributes).toMatchObject({
          "messaging.system": "rabbitmq",
          "messaging.operation.type": "send",
          "messaging.destination.name": exchange,
        });
        expect(span.status).not.toBe(SpanStatusCode.ERROR);
      }

      // The inbox: a CONSUMER span per handling, child of the writer's span, in its trace.
      const consumed = readSpans(inboxSpans).filter((s) => s.kind === SpanKind.CONSUMER);
      expect(consumed).toHaveLength(2);
      for (const span of consumed) {
        expect(span.traceId).toBe(rootSpan.traceId);
        expect(span.parentSpanId).toBe(rootSpan.spanId);
        expect(span.name).toBe(`process ${exchange}`);
        expect(span.attributes).toMatchObject({
          "messaging.system": "rabbitmq",
          "messaging.operation.type": "process",
          "messaging.destination.name": exchange,
          "messaging.consumer.group.name": "record",
        });
      }
      expect(consumed.map((s) => s.attributes["messaging.rabbitmq.destination.routing_key"]).sort()).toEqual([
        "order.created",
        "order.noted",
      ]);
      // The handler ran inside that span: what it writes or enqueues continues the same trace.
      const seen = (await effects()).map((e) => e.payload);
      expect(seen.map((p) => p.traceId)).toEqual([rootSpan.traceId, rootSpan.traceId]);
      expect(seen.map((p) => p.spanId).sort()).toEqual(consumed.map((s) => s.spanId).sort());
    } finally {
      const channel = await connection.createChannel();
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    }
  });
});
