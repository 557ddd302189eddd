// The examples' own code tested with the test kit (prisma-outbox/testing), as an app would test it: the shop's
// writer (examples/write-orders.ts) publishes what it should, billing (examples/billing-handlers.ts) makes one invoice
// per order even when a message arrives twice, and the request-reply worker (examples/request-reply/app.ts) runs a
// report to its result. Only PostgreSQL: the kit's in-memory broker stands in for RabbitMQ.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { migrate } from "../../examples/support/example-database.js";
import { writeOrders } from "../../examples/write-orders.js";
import { MemoryBroker, startInboxHarness, startOutboxHarness, TestClock } from "../../src/testing/index.js";
import { withDatabase } from "../support/servers.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** A database of this file's own, with the example's migrations (its Order and Invoice tables, the shipped ones). */
async function exampleDatabase(): Promise<string> {
  const admin = new pg.Client({ connectionString: inject("databaseUrl") });
  const name = `prisma_outbox_ex_${randomBytes(5).toString("hex")}`;
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  afterAll(async () => {
    const c = new pg.Client({ connectionString: inject("databaseUrl") });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  const url = withDatabase(inject("databaseUrl"), name);
  await migrate(url);
  return url;
}

const databaseUrl = await exampleDatabase();
const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
db.on("error", () => {});
// The example modules read their settings from the environment when loaded, as their processes do.
process.env.DATABASE_URL = databaseUrl;
process.env.AMQP_URL = "amqp://unused.invalid"; // request-reply's app.ts requires it; the kit's broker is used instead
process.env.REPORT_STEP_MS = "1";
const { default: billing, prisma: billingPrisma } = await import("../../examples/billing-handlers.js");
const reportApp = await import("../../examples/request-reply/app.js");

const broker = new MemoryBroker();
const clock = new TestClock();
const exchanges = [
  { name: "shop", type: "topic" },
  { name: reportApp.settings.exchange, type: "topic" },
] as const;
// One relay for the database, as in production: it publishes the shop's messages and the report requests.
const sending = await startOutboxHarness({
  databaseUrl,
  broker,
  clock,
  exchanges: [...exchanges],
  relay: { logger: quiet },
});
const receiving = await startInboxHarness(billing, { databaseUrl, broker, clock });
afterAll(async () => {
  await sending.stop();
  await receiving.stop();
  await billingPrisma.$disconnect();
  await db.end();
});

const invoices = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM "Invoice"')).rows[0]!.n;

describe("the shop and billing (examples/write-orders.ts, examples/billing-handlers.ts)", () => {
  it("writeOrders publishes one order.created per order and one order.invoice.requested, nothing else", async () => {
    const mark = sending.mark();
    await writeOrders(databaseUrl, 3, () => {});
    await sending.expectPublished(
      [
        { routingKey: "order.created", payload: { number: "SO-0001" } },
        { routingKey: "order.created", payload: { number: "SO-0002" } },
        { routingKey: "order.created", payload: { number: "SO-0003" } },
        { routingKey: "order.invoice.requested", payload: { number: "SO-0003" } },
      ],
      { since: mark, exactly: true },
    );
  });

  it("billing makes one invoice per order, and a message delivered twice makes none more", async () => {
    const outcomes = await receiving.settled();
    expect(outcomes).toHaveLength(3); // billing's queue is bound to order.created only
    for (const o of outcomes) expect(o.handlers).toMatchObject([{ handler: "create-invoice", status: "processed" }]);
    expect(await invoices()).toBe(3);
    const [first] = await sending.published({ routingKey: "order.created" });
    const again = await receiving.deliver(first!);
    expect(again.duplicate).toBe(true);
    expect(await invoices()).toBe(3);
  });
});

describe("request-reply (examples/request-reply/app.ts)", () => {
  it("a submitted report runs on the worker's inbox and its status resource shows the result", async () => {
    // The web server's client hands what it commits to the harness's relay, as to the server's own.
    const prisma = reportApp.createPrisma(undefined as never);
    const reports = reportApp.createRequests(prisma);
    const worker = reportApp.createWorker(prisma, reports);
    const harness = await startInboxHarness(worker, { databaseUrl, broker, clock });
    try {
      const mark = sending.mark();
      const { id } = await reports.submit("report", { title: "Q3", steps: 3 });
      await sending.expectPublished({ routingKey: reports.routingKey("report") }, { since: mark, exactly: true });
      await harness.settled();
      const status = await reports.status<unknown, { title: string; lines: unknown[] }>(id);
      expect(status).toMatchObject({ status: "succeeded", result: { title: "Q3", lines: [{}, {}, {}] } });
      // A report that fails at every attempt is dead after the worker's 3 attempts; the clock runs its retries.
      const failing = await reports.submit("report", { title: "Q4", steps: 2, failAt: 1 });
      await sending.drain();
      await harness.settled();
      await clock.advance(10_000);
      await harness.settled();
      await clock.advance(10_000);
      await harness.settled();
      expect(await reports.status(failing.id)).toMatchObject({ status: "failed", attempts: 3 });
    } finally {
      await harness.stop();
      await prisma.$disconnect();
    }
  });
});
