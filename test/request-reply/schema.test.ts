// Request-reply with every table in another PostgreSQL schema than `public`: requests({ schema }) submits, runs the
// work (running, progress, result), answers status, cancels and purges there, with the outbox, relay and inbox given
// the same schema; `public` is never touched, and a requests() on `public` does not see the schema's requests.
import { afterAll, describe, expect, it } from "vitest";
import { createRelay, type Inbox, inbox, OutboxConfigError, type Relay, requests } from "../../src/index.js";
import { uniqueName } from "../support/consumer.js";
import { quiet } from "../support/logger.js";
import { useRequests } from "../support/requests.js";
import { untilValue } from "../support/wait.js";

const SCHEMA = "Requests-Schema";
const { amqpUrl, databaseUrl, pool, exchange, handoff, prisma, reqs, connection, channel } = await useRequests(
  "rr-schema",
  SCHEMA,
);
const queue = uniqueName("rr-schema.q");
const running: Array<Inbox | Relay> = [];

const count = async (table: string, where = "TRUE") =>
  Number((await pool.query(`SELECT count(*) FROM ${table} WHERE ${where}`)).rows[0].count);
const inSchema = (table: string) => `"${SCHEMA}".${table}`;

afterAll(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  await channel.deleteQueue(queue).catch(() => {});
  await channel.deleteExchange(exchange).catch(() => {});
  await connection.close();
  await prisma.$disconnect();
  await pool.end();
});

describe(`request-reply in schema ${JSON.stringify(SCHEMA)}`, () => {
  it("submit, handle with progress, status, cancel and purge all use the schema's table", async () => {
    let progressSeen: number | undefined;
    const relay = createRelay({
      databaseUrl,
      amqpUrl,
      schema: SCHEMA,
      queue: handoff,
      listen: false,
      sweepIntervalMs: 100,
      sweepMinAgeMs: 0,
      logger: false,
    });
    running.push(relay);
    await relay.start();
    const worker = inbox<Record<string, unknown>, typeof prisma>({
      prisma,
      schema: SCHEMA,
      queue: { name: queue, bindings: [{ exchange, routingKey: reqs.routingKey("report") }] },
      handlers: {
        report: reqs.handler("report", async (input: { month: string }, { progress, requestId }) => {
          await progress(50, "half way");
          progressSeen = (await reqs.status(requestId))?.progress.percent;
          return { rows: 3, month: input.month };
        }),
      },
      sweepIntervalMs: 100,
      logger: quiet,
    });
    running.push(worker);
    await worker.start({ databaseUrl, amqpUrl });

    const { id, created } = await reqs.submit("report", { month: "2026-11" }, { idempotencyKey: "nov" });
    expect(created).toBe(true);
    expect(await count(inSchema("outbox_request"))).toBe(1);
    expect(await count("outbox_request")).toBe(0);
    // The same key and input: the first request, found in the schema's table.
    expect(await reqs.submit("report", { month: "2026-11" }, { idempotencyKey: "nov" })).toEqual({
      id,
      created: false,
    });

    const done = await untilValue(
      () => reqs.status(id),
      (s) => s?.status === "succeeded",
      "the request succeeded",
      15_000,
      20,
    );
    expect(done).toMatchObject({ status: "succeeded", result: { rows: 3, month: "2026-11" }, attempts: 1 });
    expect(progressSeen).toBe(50);
    expect(await count(inSchema("inbox_message"), "status = 'processed'")).toBe(1);
    expect(await count("inbox_message")).toBe(0);
    expect(await count("outbox_message")).toBe(0);
    // A requests() on public knows nothing of it.
    const onPublic = requests<typeof prisma>({ prisma, exchange, logger: quiet });
    expect(await onPublic.status(id)).toBeUndefined();

    // Cancelled at once (retention 0): expired, and purged from the schema's table.
    const short = requests<typeof prisma>({ prisma, exchange, schema: SCHEMA, retentionMs: 0, logger: quiet });
    await relay.stop(); // the cancelled request's message stays queued: nothing runs it
    const pending = await short.submit("report", { month: "2026-12" });
    expect((await short.cancel(pending.id))?.status).toBe("cancelled");
    await new Promise((r) => setTimeout(r, 5));
    expect(await short.purgeExpired()).toBe(1);
    expect(await short.status(pending.id)).toBeUndefined();
    expect(await reqs.status(id)).toMatchObject({ status: "succeeded" });
  });

  it("the schema is validated at construction", () => {
    expect(() => requests({ prisma, exchange, schema: "" })).toThrow(
      /Expected `schema` to be a PostgreSQL schema name/,
    );
    expect(() => requests({ prisma, exchange, schema: 5 as unknown as string })).toThrow(OutboxConfigError);
  });
});
