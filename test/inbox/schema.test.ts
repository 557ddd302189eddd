// The inbox table in another PostgreSQL schema than `public` (Prisma's `?schema=` or `@@schema`): inbox({ schema })
// stores, deduplicates, handles, retries, purges and reports health there, and the operator calls (status,
// dead-letters) given the schema read and change that table; `public` is never touched.
import { randomUUID } from "node:crypto";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  type InboxEvent,
  inbox,
  listDeadLetters,
  OutboxConfigError,
  outboxStatus,
  retryDeadLetters,
} from "../../src/index.js";
import { migrateIntoSchema } from "../support/database.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { until } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);

/** Mixed case, a dash, both quotes and a backslash: one identifier only when quoted, one literal only when escaped. */
const SCHEMA = `Inbox-Schema 'q" \\x`;
await migrateIntoSchema(databaseUrl, SCHEMA);
const table = `"${SCHEMA.replaceAll('"', '""')}".inbox_message`;

const count = async (from: string, where = "TRUE") =>
  Number((await pool.query(`SELECT count(*) FROM ${from} WHERE ${where}`)).rows[0].count);

/** An inbox in SCHEMA on a fresh queue; the handler writes one Effect row per handling, failing where asked. */
async function setUp(options: { schema?: string; retentionMs?: number; purgeIntervalMs?: number } = {}) {
  const { exchange, queue } = await exchangeAndQueue("inbox-schema");
  const failedOnce = new Set<string>();
  const events: InboxEvent[] = [];
  const box = inbox<{ "order.created": { n: number; failOnce?: boolean } }, typeof prisma>({
    prisma,
    schema: SCHEMA,
    queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: {
      effect: {
        on: "order.created",
        handle: async (message, tx) => {
          await recordEffect(tx, message, "effect");
          if (message.payload.failOnce && !failedOnce.has(message.messageId)) {
            failedOnce.add(message.messageId);
            throw new Error("failing once on purpose");
          }
        },
      },
    },
    sweepIntervalMs: 50,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 20,
    logger: quiet,
    ...options,
  });
  box.onEvent((e) => events.push(e));
  track(box);
  const publish = (body: unknown, messageId: string = randomUUID()) =>
    channel.publish(exchange, "order.created", Buffer.from(JSON.stringify(body)), { messageId });
  return { box, events, publish };
}

beforeEach(async () => {
  await pool.query(`TRUNCATE ${table}, inbox_message, "Effect" RESTART IDENTITY`);
});
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

describe(`the inbox table in schema ${JSON.stringify(SCHEMA)}`, () => {
  it("stores, deduplicates, handles and retries there; nothing goes to public", async () => {
    const { box, publish } = await setUp();
    await box.start({ databaseUrl, amqpUrl });
    const ids = Array.from({ length: 20 }, () => randomUUID());
    for (const [n, id] of ids.entries()) publish({ n, failOnce: n === 3 }, id);
    // A duplicate (a redelivery or a second publish of the same message) is stored and handled once.
    publish({ n: 0 }, ids[0]);
    await channel.waitForConfirms();
    await until(async () => (await count(table, "status = 'processed'")) === 20);
    expect(await count(table)).toBe(20);
    expect(await count("inbox_message")).toBe(0);
    // Row 3 failed once (its Effect rolled back with it) and was claimed again by the sweeper.
    expect((await pool.query(`SELECT attempts FROM ${table} WHERE message_id = $1`, [ids[3]])).rows).toEqual([
      { attempts: 2 },
    ]);
    const effects = (await pool.query('SELECT "messageId" FROM "Effect"')).rows.map((r) => r.messageId);
    expect(effects.sort()).toEqual([...ids].sort());
    // The backlog the health probe reads is the schema's.
    const health = await box.health();
    expect(health.ok).toBe(true);
    expect(health.backlog).toMatchObject({ due: 0, deferred: 0 });
  });

  it("retention purges the schema's expired dedupe records, not public's", async () => {
    const old = `INSERT INTO %s (message_id, handler, exchange, routing_key, payload, status, processed_at)
      SELECT 'old-' || n, 'effect', 'x', 'k', '{}', 'processed', now() - interval '2 minutes'
      FROM generate_series(1, 12) n`;
    await pool.query(old.replace("%s", table));
    await pool.query(old.replace("%s", "inbox_message"));
    const { box, events } = await setUp({ retentionMs: 60_000, purgeIntervalMs: 50 });
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => (await count(table)) === 0);
    expect(await count("inbox_message")).toBe(12);
    await until(async () => events.some((e) => e.type === "purged"));
    const purged = events.filter((e): e is Extract<InboxEvent, { type: "purged" }> => e.type === "purged");
    expect(purged.reduce((s, e) => s + e.count, 0)).toBe(12);
  });

  it("status and dead-letters read and retry the schema's dead rows", async () => {
    await pool.query(
      `INSERT INTO ${table} (message_id, handler, exchange, routing_key, payload, status, attempts, last_error)
       VALUES ('dead-1', 'effect', 'x', 'order.created', '{"n": 1}', 'dead', 10, 'boom')`,
    );
    const status = await outboxStatus(pool, { schema: SCHEMA });
    expect(status.inbox).toMatchObject({ present: true, dead: { total: 1, byHandler: [{ handler: "effect" }] } });
    expect((await outboxStatus(pool)).inbox).toMatchObject({ present: true, dead: { total: 0 } });

    const target = { source: "inbox", schema: SCHEMA } as const;
    const listed = await listDeadLetters(pool, target);
    expect(listed.total).toBe(1);
    expect(listed.rows[0]).toMatchObject({ messageId: "dead-1", lastError: "boom" });
    expect((await listDeadLetters(pool, { source: "inbox" })).total).toBe(0);
    expect(await retryDeadLetters(pool, target, { ids: ["dead-1"] })).toEqual({ count: 1, dryRun: false });
    expect(await count(table, "status = 'pending' AND attempts = 0")).toBe(1);
  });

  it("the schema is validated at construction", () => {
    const options = { prisma, queue: { name: "q" }, handlers: { h: { on: "k", handle: async () => {} } } };
    expect(() => inbox({ ...options, schema: "" })).toThrow(/Expected `schema` to be a PostgreSQL schema name/);
    expect(() => inbox({ ...options, schema: "a".repeat(64) })).toThrow(OutboxConfigError);
  });

  it("start() fails with what to do when the schema has no inbox table", async () => {
    const { box } = await setUp({ schema: "no_such_schema" });
    const started = box.start({ databaseUrl, amqpUrl });
    await expect(started).rejects.toThrow(OutboxConfigError);
    await expect(started).rejects.toThrow(/inbox_message does not exist in schema "no_such_schema".*`schema`/);
  });
});
