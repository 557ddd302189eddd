// `prisma-outbox status`, run as its own process against this file's database: the counts it reports for rows in
// every state, the sessions of a running relay and inbox, a non-default schema, a database without the tables, and
// bad input (exit 2, one line, no password).
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRelay, type Inbox, inbox } from "../../src/index.js";
import { runCli } from "../support/cli.js";
import { uniqueName } from "../support/consumer.js";
import { createTestDatabase, migrateIntoSchema } from "../support/database.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const prisma = newPrismaClient(url);
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

async function seed(schema = "public") {
  const q = `"${schema}"`;
  await pool.query(
    `INSERT INTO ${q}.outbox_message (message_id, exchange, routing_key, payload, available_at)
     SELECT gen_random_uuid(), 'shop', 'order.created', '{}', now() + (CASE WHEN n <= 3 THEN interval '-10 s' ELSE interval '1 h' END)
     FROM generate_series(1, 5) n`,
  );
  await pool.query(
    `INSERT INTO ${q}.outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, last_error, created_at)
     SELECT n, gen_random_uuid(), CASE WHEN n <= 3 THEN 'shop' ELSE 'billing' END, 'k', '{}', 10,
            CASE WHEN n <= 3 THEN E'NO_ROUTE: unroutable\\nmessage ' || n ELSE '406 PRECONDITION_FAILED' END, now()
     FROM generate_series(1, 4) n`,
  );
}

async function seedInbox() {
  await pool.query(
    `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, status, attempts, available_at,
                                last_error, processed_at)
     VALUES ('a', 'record', 'x', 'k', '{}', 'pending', 0, now() - interval '5 s', NULL, NULL),
            ('b', 'record', 'x', 'k', '{}', 'pending', 0, now(), NULL, NULL),
            ('c', 'record', 'x', 'k', '{}', 'pending', 2, now() + interval '1 h', 'Error: boom', NULL),
            ('d', 'record', 'x', 'k', '{}', 'processed', 1, now(), NULL, now()),
            ('e', 'record', 'x', 'k', '{}', 'dead', 3, now(), 'Error: boom', NULL),
            ('f', 'mail', 'x', 'k', '{}', 'dead', 3, now(), 'Error: boom', NULL),
            ('g', '', 'x', 'k', NULL, 'dead', 0, now(), 'no handler for routing key k', NULL),
            ('h', '(unhandled) q', 'x', 'new.k', '{}', 'pending', 0, now() + interval '1 h', NULL, NULL),
            ('i', '(unhandled) q', 'x', 'new.k', '{}', 'pending', 0, now() - interval '1 h', NULL, NULL)`,
  );
}

describe("prisma-outbox status", () => {
  it("--help prints the options and exits 0", async () => {
    const r = await runCli(["status", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: prisma-outbox status");
    expect(r.stdout).toContain("--json");
  });

  it("reports the backlog, dead letters by exchange and error, and the inbox by state (--json and text)", async () => {
    await seed();
    await seedInbox();
    const r = await runCli(["status", "--json"], { DATABASE_URL: url });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status).toMatchObject({
      schema: "public",
      outbox: {
        present: true,
        due: 3,
        deferred: 2,
        deadLetters: {
          total: 4,
          byExchange: [
            { exchange: "shop", count: 3 },
            { exchange: "billing", count: 1 },
          ],
          // Grouped on the first line of the error.
          byError: [
            { error: "NO_ROUTE: unroutable", count: 3 },
            { error: "406 PRECONDITION_FAILED", count: 1 },
          ],
        },
      },
      connected: { relaySessions: 0, listenerSessions: 0, inboxSessions: 0 },
      inbox: {
        present: true,
        due: 2,
        deferred: 1,
        retrying: 1,
        // Waiting for a handler: neither due nor deferred work, whether its grace ran out or not.
        waiting: 2,
        processed: 1,
        dead: {
          total: 3,
          byHandler: [
            { handler: "", count: 1 },
            { handler: "mail", count: 1 },
            { handler: "record", count: 1 },
          ],
          byError: [
            { error: "Error: boom", count: 2 },
            { error: "no handler for routing key k", count: 1 },
          ],
        },
      },
    });
    expect(status.outbox.oldestDueAgeMs).toBeGreaterThanOrEqual(9_000);
    expect(status.inbox.oldestDueAgeMs).toBeGreaterThanOrEqual(4_000);
    expect(Date.parse(status.outbox.deadLetters.byExchange[0].lastFailedAt)).not.toBeNaN();

    const text = await runCli(["status", "--top", "1"], { DATABASE_URL: url });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/backlog: 3 due, 2 deferred; oldest due for \d+\.\d s/);
    expect(text.stdout).toContain("dead letters: 4");
    expect(text.stdout).toMatch(/shop\s+3/);
    expect(text.stdout).not.toMatch(/billing\s+1/); // --top 1
    expect(text.stdout).toContain("2 due, 1 leased or backing off (1 retrying)");
    expect(text.stdout).toContain("dead: 3");
    expect(text.stdout).toContain("waiting for a handler (rolling deploy): 2");
  });

  it("counts the sessions of a running relay and a running inbox", async () => {
    const exchange = uniqueName("status.x");
    const relay = createRelay({
      databaseUrl: url,
      amqpUrl,
      queue: false,
      exchanges: [{ name: exchange, type: "topic", durable: false }],
      logger: false,
    });
    let box: Inbox | undefined;
    try {
      await relay.start();
      box = inbox<{ "order.created": { n: number } }, typeof prisma>({
        prisma,
        queue: { name: uniqueName("status.q"), bindings: [{ exchange, routingKey: "#" }] },
        handlers: { record: { on: "order.created", handle: async () => {} } },
        logger: quiet,
      });
      await box.start({ databaseUrl: url, amqpUrl });
      const connected = async () => JSON.parse((await runCli(["status", "--json"], { DATABASE_URL: url })).stdout);
      const status = await connected();
      expect(status.connected.listenerSessions).toBe(1);
      expect(status.connected.relaySessions).toBeGreaterThanOrEqual(1);
      expect(status.connected.inboxSessions).toBeGreaterThanOrEqual(1);
    } finally {
      await box?.stop();
      await relay.stop();
    }
  });

  it("--schema reads the outbox of that schema", async () => {
    const schema = "Ops Status"; // quoted everywhere: any name PostgreSQL accepts
    await migrateIntoSchema(url, schema);
    await pool.query(
      `INSERT INTO "${schema}".outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, created_at)
       VALUES (1, $1, 'elsewhere', 'k', '{}', 10, now())`,
      [randomUUID()],
    );
    const r = await runCli(["status", "--json", "--schema", schema], { DATABASE_URL: url });
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status.schema).toBe(schema);
    expect(status.outbox).toMatchObject({
      present: true,
      due: 0,
      deferred: 0,
      oldestDueAgeMs: null,
      deadLetters: { total: 1, byExchange: [{ exchange: "elsewhere", count: 1 }] },
    });
    const fromEnv = await runCli(["status", "--json"], { DATABASE_URL: url, OUTBOX_SCHEMA: schema });
    expect(JSON.parse(fromEnv.stdout).outbox.deadLetters.total).toBe(1);
  });

  it("a database without the tables: says so and exits 0", async () => {
    const bare = await createTestDatabase(inject("databaseUrl"), "template1");
    try {
      const json = await runCli(["status", "--json"], { DATABASE_URL: bare.url });
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({ outbox: { present: false }, inbox: { present: false } });
      const text = await runCli(["status"], { DATABASE_URL: bare.url });
      expect(text.code).toBe(0);
      expect(text.stdout).toContain("no outbox tables in this schema");
      expect(text.stdout).toContain("no inbox table (inbox_message) in this database");
    } finally {
      await bare.drop();
    }
  });

  it("bad input: exit 2 with one line saying what to fix, never the password", async () => {
    const missing = await runCli(["status"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      "prisma-outbox status: Set DATABASE_URL or --database-url (the PostgreSQL holding the tables).\n",
    );
    const unknown = await runCli(["status", "--verbose"], { DATABASE_URL: url });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("prisma-outbox status: Unknown option '--verbose'. See prisma-outbox status --help.\n");
    const top = await runCli(["status", "--top", "0"], { DATABASE_URL: url });
    expect(top.code).toBe(2);
    expect(top.stderr).toContain('Expected --top to be an integer from 1 to 1000000, got "0"');

    const notPostgres = await runCli(["status", "--database-url", "mysql://admin:s3cret-pw@db/x"]);
    expect(notPostgres.code).toBe(2);
    expect(notPostgres.stderr).toContain("Expected `--database-url` to be a postgres:// or postgresql:// URL");

    const refused = new URL(url);
    refused.username = "nobody_here";
    refused.password = "s3cret-pw";
    const r = await runCli(["status"], { DATABASE_URL: refused.toString() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^prisma-outbox status: could not query the database at .*nobody_here:\*\*\*@.*\(28000\)\n$/,
    );
    for (const out of [notPostgres, r]) expect(out.stdout + out.stderr).not.toContain("s3cret-pw");

    const unknownCommand = await runCli(["stats"]);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('Unknown command "stats"');
  });
});
