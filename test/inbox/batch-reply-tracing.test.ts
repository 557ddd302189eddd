// Batch handlers with request-reply and tracing, against PostgreSQL and RabbitMQ: request-reply's handler with
// `batch` writes each request's result in the batch's transaction (one failing request fails only itself), and a
// batch is ONE consumer span linked to the trace each of its messages was written in.
import { randomBytes, randomUUID } from "node:crypto";
import { SpanKind } from "@opentelemetry/api";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRelay, type Inbox, inbox, type Relay } from "../../src/index.js";
import { uniqueName } from "../support/consumer.js";
import { quiet } from "../support/logger.js";
import { disableTelemetry, registerTracing } from "../support/otel.js";
import { useRequests } from "../support/requests.js";

const { amqpUrl, databaseUrl, pool, handoff, prisma, reqs, exchange, connection, channel } =
  await useRequests("batchrr");
const running: Array<Inbox | Relay> = [];
const queues: string[] = [];
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: 30_000, interval: 50 });

beforeEach(async () => {
  await pool.query('TRUNCATE outbox_request, inbox_message, outbox_message, "Effect" RESTART IDENTITY');
});
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  for (const q of queues.splice(0)) await channel.deleteQueue(q).catch(() => {});
});
afterAll(async () => {
  disableTelemetry();
  await channel.deleteExchange(exchange).catch(() => {});
  await connection.close();
  await prisma.$disconnect();
  await pool.end();
});

describe("batch handlers: request-reply", () => {
  it("each request's result is written in the batch's transaction; a failing request fails only itself", async () => {
    const relay = createRelay({
      databaseUrl,
      amqpUrl,
      queue: handoff,
      listen: false,
      sweepIntervalMs: 100,
      sweepMinAgeMs: 0,
      logger: false,
    });
    await relay.start();
    running.push(relay);
    const queue = uniqueName("batchrr.q");
    queues.push(queue);
    /** The transaction each request's work ran in, last run. */
    const ranIn = new Map<number, string>();
    const box = inbox<Record<string, unknown>, typeof prisma>({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: reqs.routingKey("report") }] },
      handlers: {
        report: reqs.handler(
          "report",
          async (input: { n: number }, { tx }) => {
            const [row] = await tx.$queryRawUnsafe<Array<{ txid: string }>>("SELECT txid_current()::text AS txid");
            ranIn.set(input.n, row!.txid);
            if (input.n === 13) throw new Error("thirteen is unlucky");
            return { doubled: input.n * 2 };
          },
          { batch: { size: 50, waitMs: 300 } },
        ),
      },
      maxAttempts: 2,
      sweepIntervalMs: 100,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 20,
      logger: quiet,
    });
    running.push(box);
    await box.start({ databaseUrl, amqpUrl });
    const submit = (from: number, to: number) =>
      prisma.$transaction(async (tx) => {
        const out: string[] = [];
        for (let n = from; n < to; n++) out.push((await reqs.submit("report", { n }, { tx })).id);
        return out;
      });
    const finished = (ids: string[]) => async () =>
      (await Promise.all(ids.map((id) => reqs.status(id)))).filter(
        (s) => s?.status === "succeeded" || s?.status === "failed",
      ).length;
    // Ten good ones first: they run in batches (several works in one transaction, whose results commit in it).
    const first = await submit(0, 10);
    await poll(finished(first)).toBe(10);
    const perTx = new Map<string, number>();
    for (const txid of ranIn.values()) perTx.set(txid, (perTx.get(txid) ?? 0) + 1);
    expect(Math.max(...perTx.values())).toBeGreaterThan(1);
    const { rows } = await pool.query<{ xmin: string }>(
      "SELECT DISTINCT xmin::text FROM outbox_request WHERE id::text = ANY($1::text[])",
      [first],
    );
    expect(rows.length).toBeLessThan(10);
    // Then ten more, with a failing one among them.
    const second = await submit(10, 20);
    await poll(finished(second)).toBe(10);
    const all = await Promise.all([...first, ...second].map((id) => reqs.status(id)));
    all.forEach((s, n) => {
      if (n === 13)
        expect(s).toMatchObject({
          status: "failed",
          error: { detail: expect.stringContaining("unlucky"), attempts: 2 },
        });
      else expect(s, `request ${n}`).toMatchObject({ status: "succeeded", result: { doubled: n * 2 } });
    });
  });
});

describe("batch handlers: tracing", () => {
  it("one consumer span per batch, linked to each message's trace", async () => {
    const { spans } = registerTracing();
    const queue = uniqueName("batchrr.t");
    queues.push(queue);
    const handled: string[] = [];
    const make = () =>
      inbox<{ "traced.event": { n: number } }, typeof prisma>({
        prisma,
        queue: { name: queue, bindings: [{ exchange, routingKey: "traced.event" }] },
        handlers: {
          traced: {
            on: "traced.event",
            handleBatch: async (messages) => {
              for (const m of messages) handled.push(m.messageId);
            },
            batch: { size: 50, waitMs: 300 },
          },
        },
        sweepIntervalMs: 100,
        logger: quiet,
      });
    const first = make();
    await first.start({ databaseUrl, amqpUrl });
    await first.stop();
    const traces: string[] = [];
    for (let n = 0; n < 10; n++) {
      const traceId = randomBytes(16).toString("hex");
      traces.push(traceId);
      const traceparent = `00-${traceId}-${randomBytes(8).toString("hex")}-01`;
      channel.publish(exchange, "traced.event", Buffer.from(JSON.stringify({ n })), {
        messageId: randomUUID(),
        headers: { traceparent },
      });
    }
    const box = make();
    running.push(box);
    await box.start({ databaseUrl, amqpUrl });
    await poll(async () => handled.length).toBe(10);
    const batchSpans = () =>
      spans().filter((s) => s.kind === SpanKind.CONSUMER && s.attributes["messaging.consumer.group.name"] === "traced");
    await poll(async () =>
      batchSpans().reduce((n, s) => n + Number(s.attributes["messaging.batch.message_count"]), 0),
    ).toBe(10);
    const made = batchSpans();
    expect(made.length).toBeLessThan(10);
    for (const span of made) {
      expect(span.parentSpanId).toBeUndefined();
      expect(span.links).toHaveLength(Number(span.attributes["messaging.batch.message_count"]));
      expect(span.name).toBe(`process ${exchange}`);
    }
    expect(made.flatMap((s) => s.links.map((l) => l.traceId)).sort()).toEqual([...traces].sort());
  });
});
