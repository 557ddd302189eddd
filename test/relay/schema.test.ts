// The outbox tables in another PostgreSQL schema than `public` (Prisma's `?schema=` or `@@schema`): written through
// the Prisma client with outbox({ schema }), relayed with createRelay({ schema }), woken by that schema's NOTIFY.
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRelay, OutboxQueue, outbox } from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { migrateIntoSchema } from "../support/database.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const { relay, defer } = useTestRelays({ databaseUrl: url, amqpUrl, queue: false });

/** A plain name, and one that only quoting makes one identifier (its NOTIFY channel is hashed). */
const SCHEMAS = ["outbox_x", 'Outbox "Weird"-x.y'];
for (const schema of SCHEMAS) await migrateIntoSchema(url, schema);

const quoted = (schema: string) => `"${schema.replaceAll('"', '""')}"`;
const count = async (schema: string) =>
  Number((await pool.query(`SELECT count(*) FROM ${quoted(schema)}.outbox_message`)).rows[0].count);

afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe.each(SCHEMAS)("outbox tables in schema %j", (schema) => {
  it("writes land in the schema's table, and a relay in another process is woken by that schema's NOTIFY", async () => {
    const c = await startCountingConsumer(amqpUrl, uniqueName("schema"));
    defer(() => c.close());
    const prisma = base.$extends(
      outbox<typeof base>({ exchange: c.exchange, schema, queue: false, events: { Order: { create: true } } }),
    );
    // Before any relay runs: the rows are in the schema, none in public.
    await prisma.order.create({ data: { number: `${schema}-1`, amount: 1 } });
    expect(await count(schema)).toBe(1);
    expect(await count("public")).toBe(0);

    // A relay on `public` takes nothing of this schema's outbox.
    const other = relay({ sweepIntervalMs: 50, sweepMinAgeMs: 0 });
    await other.start();
    // No in-process queue and a sweeper that waits a minute: only LISTEN on the schema's channel delivers fast.
    const r = relay({ schema, listen: true, sweepIntervalMs: 60_000 });
    await r.start();
    await c.waitForDistinct(1, 10_000); // the backlog drained at start
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: `${schema}-2`, amount: 2 } });
      await tx.$enqueue(Array.from({ length: 49 }, (_, i) => ({ routingKey: "note", payload: i })));
    });
    await c.waitForDistinct(51, 10_000);
    // Arrival may precede the relay's COMMIT by a moment.
    await expect.poll(() => count(schema)).toBe(0);
    await expect.poll(() => r.stats().published).toBe(51);
    expect(other.stats().published).toBe(0);
    expect(c.duplicates).toBe(0);
  });

  it("the in-process fast path claims by id from the schema's table", async () => {
    const c = await startCountingConsumer(amqpUrl, uniqueName("schema-q"));
    defer(() => c.close());
    const queue = new OutboxQueue();
    const prisma = base.$extends(outbox<typeof base>({ exchange: c.exchange, schema, queue }));
    const r = relay({ schema, queue, listen: false, sweepIntervalMs: 60_000 });
    await r.start();
    await prisma.$enqueue(Array.from({ length: 20 }, (_, i) => ({ routingKey: "q", payload: i })));
    await c.waitForDistinct(20, 10_000);
    await expect.poll(() => r.stats().published).toBe(20);
    await expect.poll(() => count(schema)).toBe(0);
  });
});

it("a refused message is put back, then dead-lettered, in the schema's tables", async () => {
  const schema = SCHEMAS[0]!;
  const prisma = base.$extends(outbox({ schema, queue: false }));
  // An exchange that does not exist: refused at every attempt.
  await prisma.$enqueue({ exchange: uniqueName("missing"), routingKey: "k", payload: 1 });
  const r = relay({ schema, maxAttempts: 2, retryBaseDelayMs: 10, retryMaxDelayMs: 10, sweepIntervalMs: 50 });
  r.onEvent(() => {});
  await r.start();
  await expect
    .poll(async () => (await pool.query(`SELECT attempts FROM ${quoted(schema)}.outbox_dead_letter`)).rows, {
      timeout: 10_000,
    })
    .toEqual([{ attempts: 2 }]);
  expect(await count(schema)).toBe(0);
  expect((await pool.query("SELECT count(*) FROM outbox_dead_letter")).rows[0].count).toBe("0");
});

it("a relay pointed at a schema without the outbox tables fails to start, naming the schema, not the password", async () => {
  const withPassword = new URL(url);
  withPassword.password = "pw-db-secret"; // trust authentication here: any password connects
  const r = relay({ databaseUrl: withPassword.toString(), schema: "no_such_schema" });
  const error = await r.start().then(
    () => undefined,
    (e: Error) => e,
  );
  expect(error?.message).toMatch(
    /outbox_message does not exist in schema "no_such_schema" of the database \(postgresql:\/\/postgres:\*\*\*@/,
  );
  expect(error?.message).not.toContain("pw-db-secret");
  expect(r.state).toBe("stopped");
});

it("outbox() and createRelay() refuse a schema PostgreSQL cannot name", () => {
  expect(() => outbox({ schema: "" })).toThrow(/`schema` to be a PostgreSQL schema name/);
  expect(() => outbox({ schema: "x".repeat(64) })).toThrow(/`schema` to be a PostgreSQL schema name of 1 to 63/);
  expect(() => createRelay({ databaseUrl: url, amqpUrl, schema: 42 as never })).toThrow(/`schema`/);
});
