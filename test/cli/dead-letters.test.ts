// `prisma-outbox dead-letters list | retry | purge`, run as its own process against this file's database: every
// filter, the --all guard, --dry-run, a retried dead letter published exactly once by a running relay (woken by the
// retry's NOTIFY), and a retried dead inbox row handled by a running inbox.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import pg from "pg";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createRelay,
  type Inbox,
  inbox,
  listDeadLetters,
  OutboxConfigError,
  outbox,
  outboxStatus,
  purgeDeadLetters,
  retryDeadLetters,
} from "../../src/index.js";
import { runCli } from "../support/cli.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { createTestDatabase, migrateIntoSchema } from "../support/database.js";
import { recordEffect } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const prisma = newPrismaClient(url);
const env = { DATABASE_URL: url };
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

const deadIds = ["1", "2", "3", "4"];
const messageIds = deadIds.map(() => randomUUID());

/** Four dead letters, one failure a day from 2026-01-01 (id 1) to 2026-01-04 (id 4). */
async function seedDeadLetters() {
  await pool.query("DELETE FROM outbox_dead_letter");
  await pool.query("DELETE FROM outbox_message");
  await pool.query(
    `INSERT INTO outbox_dead_letter (id, message_id, exchange, routing_key, payload, headers, attempts, last_error,
                                     created_at, failed_at)
     SELECT r.id, r.message_id, r.exchange, r.routing_key, r.payload::json, '{"h":"v"}', 10, r.last_error,
            r.failed_at - interval '1 h', r.failed_at
     FROM json_to_recordset($1::json) AS r(id bigint, message_id uuid, exchange text, routing_key text, payload text,
                                           last_error text, failed_at timestamptz)`,
    [
      JSON.stringify([
        [1, "shop", "order.created", "NO_ROUTE: Unroutable", "2026-01-01T00:00:00Z"],
        [2, "shop", "order.cancelled", "nacked by the broker", "2026-01-02T00:00:00Z"],
        [3, "billing", "invoice.eu", "406 PRECONDITION_FAILED", "2026-01-03T00:00:00Z"],
        [4, "billing", "invoice_eu", null, "2026-01-04T00:00:00Z"],
      ]).replace(/\[(\d),"([^"]+)","([^"]+)",("[^"]+"|null),"([^"]+)"\]/g, (_, id, ex, rk, err, at) =>
        JSON.stringify({
          id: Number(id),
          message_id: messageIds[Number(id) - 1],
          exchange: ex,
          routing_key: rk,
          payload: JSON.stringify({ n: Number(id), text: "ü  spaced" }),
          last_error: JSON.parse(err),
          failed_at: at,
        }),
      ),
    ],
  );
}

async function listIds(args: string[]): Promise<string[]> {
  const r = await runCli(["dead-letters", "list", "--json", ...args], env);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout).rows.map((row: { id: string }) => row.id);
}

const deadCount = async () => Number((await pool.query("SELECT count(*) FROM outbox_dead_letter")).rows[0].count);

describe("prisma-outbox dead-letters (outbox)", () => {
  beforeEach(seedDeadLetters);

  it("list: newest first, each filter, and their combination", async () => {
    expect(await listIds([])).toEqual(["4", "3", "2", "1"]);
    expect(await listIds(["--exchange", "shop"])).toEqual(["2", "1"]);
    expect(await listIds(["--exchange", "shop,billing", "--exchange", "none"])).toEqual(["4", "3", "2", "1"]);
    // Routing key: exact, or * for any characters; % and _ are literal.
    expect(await listIds(["--routing-key", "order.*"])).toEqual(["2", "1"]);
    expect(await listIds(["--routing-key", "invoice_eu"])).toEqual(["4"]);
    expect(await listIds(["--routing-key", "invoice.eu"])).toEqual(["3"]);
    expect(await listIds(["--routing-key", "invoice%"])).toEqual([]);
    expect(await listIds(["--routing-key", "*eu"])).toEqual(["4", "3"]);
    // Error: substring, case-insensitive, no wildcards.
    expect(await listIds(["--error", "unroutable"])).toEqual(["1"]);
    expect(await listIds(["--error", "%"])).toEqual([]);
    // Time on failed_at: since inclusive, until exclusive; no offset means UTC.
    expect(await listIds(["--since", "2026-01-02", "--until", "2026-01-04T00:00"])).toEqual(["3", "2"]);
    expect(await listIds(["--since", "2026-01-03T01:00:00+02:00"])).toEqual(["4", "3"]);
    // Ids: row ids or message ids (any case), comma-separated or repeated.
    expect(await listIds(["--id", `1,${messageIds[2]!.toUpperCase()}`])).toEqual(["3", "1"]);
    expect(await listIds(["--id", "2", "--id", "4"])).toEqual(["4", "2"]);
    expect(await listIds(["--exchange", "shop", "--error", "NACKED"])).toEqual(["2"]);

    const limited = await runCli(["dead-letters", "list", "--json", "--limit", "1"], env);
    const json = JSON.parse(limited.stdout);
    expect(json).toMatchObject({ source: "outbox", total: 4 });
    expect(json.rows).toEqual([
      {
        id: "4",
        messageId: messageIds[3],
        exchange: "billing",
        routingKey: "invoice_eu",
        type: null,
        correlationId: null,
        attempts: 10,
        lastError: null,
        createdAt: "2026-01-03T23:00:00.000Z",
        failedAt: "2026-01-04T00:00:00.000Z",
        payload: { n: 4, text: "ü  spaced" },
      },
    ]);
    const text = await runCli(["dead-letters", "list", "--limit", "2"], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^id\s+message id\s+exchange\s+routing key\s+attempts\s+failed at\s+last error\n/);
    expect(text.stdout).toContain(messageIds[3]);
    expect(text.stdout).toContain("4 dead letters match (newest 2 shown)");
  });

  it("retry and purge need a filter or --all; --dry-run changes nothing; each prints what it did", async () => {
    for (const action of ["retry", "purge"]) {
      const r = await runCli(["dead-letters", action], env);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${action} without a filter would take every dead letter`);
      expect(r.stderr).toContain("or --all");
    }
    const dry = await runCli(["dead-letters", "purge", "--exchange", "billing", "--dry-run"], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("dry run: would purge 2 dead letters; nothing changed");
    expect(await deadCount()).toBe(4);

    const purged = await runCli(["dead-letters", "purge", "--exchange", "billing"], env);
    expect(purged.stdout).toBe("purged 2 dead letters\n");
    expect(await deadCount()).toBe(2);

    // A dead letter whose message id is back in the outbox already is left alone (and not counted).
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload) VALUES ($1, 'shop', 'k', '{}')`,
      [messageIds[0]],
    );
    const dryRetry = await runCli(["dead-letters", "retry", "--all", "--dry-run", "--json"], env);
    expect(JSON.parse(dryRetry.stdout)).toMatchObject({
      action: "retry",
      source: "outbox",
      count: 1,
      dryRun: true,
      rows: [{ id: "2" }],
    });
    expect(await deadCount()).toBe(2);

    const retried = await runCli(["dead-letters", "retry", "--all"], env);
    expect(retried.stdout).toBe("retried 1 dead letter (moved back into the outbox of schema public)\n");
    const { rows } = await pool.query(
      `SELECT message_id, exchange, routing_key, payload::text AS payload, headers, attempts, available_at <= now() AS due,
              created_at FROM outbox_message WHERE message_id = $1`,
      [messageIds[1]],
    );
    expect(rows).toEqual([
      {
        message_id: messageIds[1],
        exchange: "shop",
        routing_key: "order.cancelled",
        payload: JSON.stringify({ n: 2, text: "ü  spaced" }),
        headers: { h: "v" },
        attempts: 0,
        due: true,
        created_at: new Date("2026-01-01T23:00:00Z"),
      },
    ]);
    expect(await listIds([])).toEqual(["1"]);

    const all = await runCli(["dead-letters", "purge", "--all", "--json"], env);
    expect(JSON.parse(all.stdout)).toEqual({ action: "purge", source: "outbox", count: 1, dryRun: false });
    expect(await deadCount()).toBe(0);
  });

  it("retry: a running relay publishes the dead letter exactly once, woken by the retry's NOTIFY", async () => {
    await pool.query("DELETE FROM outbox_dead_letter");
    const exchange = uniqueName("dl.retry");
    const events: string[] = [];
    const relay = createRelay({
      databaseUrl: url,
      amqpUrl,
      queue: false,
      exchanges: [{ name: exchange, type: "topic" }],
      maxAttempts: 1,
      // Far longer than the test waits: only the NOTIFY can wake the relay for the retried row.
      sweepIntervalMs: 600_000,
      listenCheckIntervalMs: 600_000,
      logger: false,
    });
    relay.onEvent((e) => events.push(e.type));
    let consumer: Awaited<ReturnType<typeof startCountingConsumer>> | undefined;
    try {
      await relay.start();
      const writer = prisma.$extends(outbox({ exchange, queue: false }));
      // No queue is bound yet: the broker returns the message as unroutable, and with maxAttempts 1 it is dead.
      const [messageId] = await writer.$enqueue({ routingKey: "order.created", payload: { n: 1 } });
      await expect.poll(() => deadCount(), { timeout: 20_000 }).toBe(1);

      consumer = await startCountingConsumer(amqpUrl, exchange);
      const r = await runCli(["dead-letters", "retry", "--id", messageId!], env);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("retried 1 dead letter (moved back into the outbox of schema public)\n");
      await consumer.waitForDistinct(1, 20_000);
      await expect
        .poll(async () => Number((await pool.query("SELECT count(*) FROM outbox_message")).rows[0].count))
        .toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 500)); // room for a duplicate to show up, were there one
      expect([...consumer.counts]).toEqual([[messageId, 1]]);
      expect(JSON.parse(consumer.arrivals[0]!.body)).toEqual({ n: 1 });
      expect(await deadCount()).toBe(0);
      expect(events.filter((e) => e === "dead-lettered")).toHaveLength(1);
    } finally {
      await consumer?.close();
      await relay.stop();
    }
  });

  it("--schema: retries into that schema's outbox and notifies that schema's channel", async () => {
    const schema = "ops_dl";
    await migrateIntoSchema(url, schema);
    const messageId = randomUUID();
    await pool.query(
      `INSERT INTO ops_dl.outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, created_at)
       VALUES (7, $1, 'elsewhere', 'k', '[1]', 10, now())`,
      [messageId],
    );
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    try {
      const heard: string[] = [];
      listener.on("notification", (n) => heard.push(n.channel));
      await listener.query('LISTEN "prisma_outbox.ops_dl"');
      await listener.query("LISTEN prisma_outbox");
      const r = await runCli(["dead-letters", "retry", "--schema", schema, "--exchange", "elsewhere"], env);
      expect(r.stdout).toBe("retried 1 dead letter (moved back into the outbox of schema ops_dl)\n");
      const moved = await pool.query("SELECT message_id, attempts FROM ops_dl.outbox_message");
      expect(moved.rows).toEqual([{ message_id: messageId, attempts: 0 }]);
      expect((await pool.query("SELECT count(*)::int AS n FROM ops_dl.outbox_dead_letter")).rows[0].n).toBe(0);
      await expect.poll(() => heard).toEqual(["prisma_outbox.ops_dl"]);
      expect(await deadCount()).toBe(4); // public's dead letters untouched
    } finally {
      await listener.end();
    }
  });

  it("the same as a library: list, retry and purge on the app's pool, with the `all` guard", async () => {
    const target = { source: "outbox" as const };
    await expect(retryDeadLetters(pool, target, {})).rejects.toThrow(OutboxConfigError);
    await expect(purgeDeadLetters(pool, target, {})).rejects.toThrow("Expected a filter, or `all: true`");
    await expect(listDeadLetters(pool, target, { handlers: ["h"] })).rejects.toThrow(OutboxConfigError);
    expect(await listDeadLetters(pool, target, { exchanges: ["shop"] }, 1)).toMatchObject({
      total: 2,
      rows: [{ id: "2", messageId: messageIds[1] }],
    });
    expect(await retryDeadLetters(pool, target, { ids: ["1"] })).toEqual({ count: 1, dryRun: false });
    expect(await purgeDeadLetters(pool, target, {}, { all: true, dryRun: true })).toMatchObject({
      count: 3,
      dryRun: true,
    });
    expect(await purgeDeadLetters(pool, target, {}, { all: true })).toEqual({ count: 3, dryRun: false });
    expect(await outboxStatus(pool)).toMatchObject({ outbox: { due: 1, deadLetters: { total: 0 } } });
  });

  it("bad input: exit 2 with one line, never the password", async () => {
    const cases: Array<[string[], string]> = [
      [[], "Expected a subcommand: list, retry or purge."],
      [["replay"], 'Unknown subcommand "replay": expected list, retry or purge.'],
      [["list", "--exchnage", "shop"], "Unknown option '--exchnage'. See prisma-outbox dead-letters --help."],
      [["list", "--since", "last week"], "Expected --since to be an ISO 8601 time such as 2026-11-24"],
      [["list", "--until", "2026-13-45"], "Expected --until to be an ISO 8601 time"],
      [
        ["list", "--since", "2026-02-01", "--until", "2026-01-01"],
        "Expected --since (2026-02-01T00:00:00.000Z) to be before --until",
      ],
      [["list", "--handler", "record"], "--handler filters the inbox's dead rows: add --inbox."],
      [["list", "--dry-run"], "--dry-run and --all apply to retry and purge, not list."],
      [["purge", "--all", "--limit", "5"], "--limit applies to list"],
      [["list", "--limit", "x"], 'Expected --limit to be an integer from 1 to 1000000, got "x"'],
      [["list", "--id", ","], "Expected --id to be a non-empty value or list."],
      [["list", "--inbox", "--schema", "s"], 'The table inbox_message does not exist in schema "s"'],
      [["list", "--schema", "missing"], 'The outbox tables do not exist in schema "missing"'],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(["dead-letters", ...args], env);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stdout).toBe("");
    }
    const refused = new URL(url);
    refused.username = "nobody_here";
    refused.password = "s3cret-pw";
    const r = await runCli(["dead-letters", "purge", "--all", "--database-url", refused.toString()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("could not query the database at");
    expect(r.stdout + r.stderr).not.toContain("s3cret-pw");
    const notUrl = await runCli(["dead-letters", "list"], { DATABASE_URL: "admin:s3cret-pw@db:5432/x" });
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toContain("Expected `DATABASE_URL` to be a postgres:// or postgresql:// URL");
    expect(notUrl.stdout + notUrl.stderr).not.toContain("s3cret-pw");
  });
});

describe("prisma-outbox dead-letters --inbox", () => {
  const inboxRows = async () =>
    (await pool.query("SELECT message_id, handler, status, attempts FROM inbox_message ORDER BY id")).rows;

  it("list, retry (handled by a running inbox afterwards) and purge dead inbox rows", async () => {
    const exchange = uniqueName("dl.inbox.x");
    const queue = uniqueName("dl.inbox.q");
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createConfirmChannel();
    await channel.assertExchange(exchange, "topic", { durable: false });
    let failing = true;
    const box: Inbox = inbox<{ "order.created": { n: number } }, typeof prisma>({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      handlers: {
        record: {
          on: "order.created",
          handle: async (message, tx) => {
            await recordEffect(tx, message, "record");
            if (failing) throw new Error("Downstream UNAVAILABLE");
          },
        },
      },
      maxAttempts: 1,
      sweepIntervalMs: 100,
      logger: quiet,
    });
    try {
      await box.start({ databaseUrl: url, amqpUrl });
      const messageId = randomUUID();
      channel.publish(exchange, "order.created", Buffer.from('{"n":7}'), { messageId });
      channel.publish(exchange, "order.created", Buffer.from("not json"), { messageId: randomUUID() });
      await channel.waitForConfirms();
      await expect
        .poll(async () => (await inboxRows()).map((r) => `${r.handler}:${r.status}`).sort(), { timeout: 20_000 })
        .toEqual([":dead", "record:dead"]);

      const listed = await runCli(["dead-letters", "list", "--inbox", "--json", "--error", "unavailable"], env);
      expect(JSON.parse(listed.stdout)).toMatchObject({
        source: "inbox",
        total: 1,
        rows: [{ messageId, handler: "record", exchange, routingKey: "order.created", attempts: 1, payload: { n: 7 } }],
      });
      expect(JSON.parse(listed.stdout).rows[0].lastError).toContain("Downstream UNAVAILABLE");
      expect(await runCli(["dead-letters", "list", "--inbox", "--handler", ""], env)).toMatchObject({
        code: 0,
        stdout: expect.stringContaining("1 dead inbox row match"),
      });

      failing = false;
      // --all: the invalid delivery (handler '') is left dead, since no handler could take it.
      const dry = await runCli(["dead-letters", "retry", "--inbox", "--all", "--dry-run"], env);
      expect(dry.stdout).toContain("dry run: would retry 1 dead inbox row; nothing changed");
      const retried = await runCli(["dead-letters", "retry", "--inbox", "--all"], env);
      expect(retried.stdout).toBe("retried 1 dead inbox row (back to pending)\n");
      await expect
        .poll(async () => (await inboxRows()).find((r) => r.message_id === messageId), { timeout: 20_000 })
        .toMatchObject({ status: "processed", attempts: 1 });
      const effects = await pool.query('SELECT "messageId" FROM "Effect" WHERE "messageId" = $1', [messageId]);
      expect(effects.rows).toHaveLength(1); // the failed attempt's write rolled back; the retried one committed

      const purged = await runCli(["dead-letters", "purge", "--inbox", "--handler", ""], env);
      expect(purged.stdout).toBe("purged 1 dead inbox row\n");
      expect((await inboxRows()).map((r) => r.status)).toEqual(["processed"]);
    } finally {
      await box.stop();
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    }
  });

  it("a database without the inbox table: exit 2 saying what to do", async () => {
    const bare = await createTestDatabase(inject("databaseUrl"), "template1");
    try {
      const r = await runCli(["dead-letters", "list", "--inbox"], { DATABASE_URL: bare.url });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        "prisma-outbox dead-letters: The table inbox_message does not exist: add prisma/inbox.prisma of the package to your schema and migrate.\n",
      );
    } finally {
      await bare.drop();
    }
  });
});
