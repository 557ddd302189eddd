// The receiver never acks a delivery before its inbox row is committed, against the real PostgreSQL and RabbitMQ: an
// inbox whose INSERT fails, or hangs, and is stopped meanwhile acks nothing, and the broker has every delivery back.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import pg from "pg";
import { afterAll, afterEach, expect, inject, it } from "vitest";
import { type Inbox, inbox, outbox } from "../../src/index.js";
import { uniqueName } from "../support/consumer.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl).$extends(outbox({ exchange: "next", queue: false }));
const connection = await amqp.connect(amqpUrl);
const channel = await connection.createConfirmChannel();
const cleanups: Array<() => Promise<unknown>> = [];
const MESSAGES = 20;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await pool.query("TRUNCATE inbox_message");
});
afterAll(async () => {
  await connection.close();
  await prisma.$disconnect();
  await pool.end();
});

/** An inbox on a fresh queue, started, its INSERTs broken, with MESSAGES published to it and every one delivered (none acked yet). */
async function startWithDeliveries(
  breakInserts: () => Promise<unknown>,
): Promise<{ box: Inbox; queue: string; handled: string[] }> {
  const exchange = uniqueName("ack.x");
  const queue = uniqueName("ack.q");
  await channel.assertExchange(exchange, "topic", { durable: false });
  cleanups.push(async () => {
    await channel.deleteQueue(queue).catch(() => {});
    await channel.deleteExchange(exchange).catch(() => {});
  });
  const handled: string[] = [];
  const box = inbox<{ "order.created": { n: number } }, typeof prisma>({
    prisma,
    queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: { effect: { on: "order.created", handle: async (m) => void handled.push(m.messageId) } },
    stopTimeoutMs: 500,
    logger: quiet,
  });
  cleanups.push(() => box.stop());
  await box.start({ databaseUrl, amqpUrl });
  await breakInserts();
  for (let n = 0; n < MESSAGES; n++) {
    channel.publish(exchange, "order.created", Buffer.from(JSON.stringify({ n })), { messageId: randomUUID() });
  }
  await channel.waitForConfirms();
  // Every delivery is with the inbox (prefetch 1,000): none ready on the queue, none acked.
  await expect.poll(async () => (await channel.checkQueue(queue)).messageCount, { timeout: 10_000 }).toBe(0);
  return { box, queue, handled };
}

/** What the broker has for the queue once the inbox's channel is gone: every unacked delivery is ready again. */
async function backOnQueue(queue: string): Promise<number> {
  return (await channel.checkQueue(queue)).messageCount;
}

it("an INSERT that fails, then stop(): nothing acked, every delivery back on the queue", async () => {
  // Every INSERT into the inbox fails: the receiver retries with backoff, holding the deliveries unacked.
  const { box, queue, handled } = await startWithDeliveries(async () => {
    await pool.query(`
      CREATE OR REPLACE FUNCTION ack_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'inbox insert refused on purpose'; END $$;
      CREATE TRIGGER ack_test_refuse BEFORE INSERT ON inbox_message FOR EACH ROW EXECUTE FUNCTION ack_test_refuse()`);
    cleanups.push(() => pool.query("DROP TRIGGER IF EXISTS ack_test_refuse ON inbox_message"));
  });
  await new Promise((r) => setTimeout(r, 300)); // a few failed INSERTs
  await box.stop(); // past stopTimeoutMs the receiver gives up retrying
  expect(await backOnQueue(queue)).toBe(MESSAGES);
  expect(Number((await pool.query("SELECT count(*) FROM inbox_message")).rows[0].count)).toBe(0);
  expect(handled).toEqual([]);
});

it("an INSERT that hangs, then stop(): nothing acked, every delivery back on the queue", async () => {
  // A transaction holding a lock that every INSERT into the inbox waits for.
  const blocker = new pg.Client({ connectionString: databaseUrl });
  await blocker.connect();
  cleanups.push(() => blocker.end());
  const { box, queue, handled } = await startWithDeliveries(() =>
    blocker.query("BEGIN; LOCK TABLE inbox_message IN EXCLUSIVE MODE"),
  );
  const waiting = async () =>
    Number(
      (
        await pool.query(
          "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%inbox_message%' AND datname = current_database()",
        )
      ).rows[0].count,
    );
  await expect.poll(waiting, { timeout: 10_000 }).toBeGreaterThan(0);
  const stopped = box.stop();
  await new Promise((r) => setTimeout(r, 800)); // past stopTimeoutMs: the receiver was told to give up
  // The hung INSERT ends in an error (as a lock_timeout or a lost connection would end it); it is not retried.
  await pool.query(
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%inbox_message%' AND datname = current_database()",
  );
  await stopped;
  await blocker.query("ROLLBACK");
  expect(await backOnQueue(queue)).toBe(MESSAGES);
  expect(Number((await pool.query("SELECT count(*) FROM inbox_message")).rows[0].count)).toBe(0);
  expect(handled).toEqual([]);
});
