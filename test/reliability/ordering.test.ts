// Scenario O1, per-key order end to end: concurrent writers commit messages with 1,000 ordering keys; 4 relay workers
// publish them while they are SIGKILLed 3 times (and started again); RabbitMQ routes them to a plain consumer and to
// the queue of 2 inbox workers, whose handler fails once on some messages of some keys. For every key:
// - at the consumer, the sequence is the commit order, with duplicates only as immediate repeats (a republished
//   message may come again, never after a later message of its key);
// - in the handler effects, the sequence is exactly the commit order (one effect each);
// - nothing is lost.
// The commit order of a key is its outbox id order (the insert's key locks); a trigger logs each row's id as it is
// written, since the relays delete the rows.
import { expect, it } from "vitest";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import * as h from "./harness.js";
import * as ih from "./inbox-harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const MESSAGES = h.size(4_000, 50_000);
const KEYS = 1_000;
const RELAYS = 4;
const KILLS = 3;
const WRITERS = 8;
const CHUNK = 10;

/** The sequence with immediate repeats collapsed. */
function collapse(list: readonly string[]): string[] {
  return list.filter((id, i) => i === 0 || list[i - 1] !== id);
}

/** Keys whose received sequence is not the expected one (first few, with what differs). */
function outOfOrder(expected: Map<string, string[]>, received: Map<string, string[]>, collapsing: boolean): string[] {
  const bad: string[] = [];
  for (const [key, ids] of expected) {
    const got = received.get(key) ?? [];
    const seen = collapsing ? collapse(got) : got;
    if (JSON.stringify(seen) !== JSON.stringify(ids)) bad.push(`${key}: expected ${ids.length}, got ${got.length}`);
  }
  return bad;
}

it(
  `O1. ${MESSAGES} messages on ${KEYS} keys, ${RELAYS} relays SIGKILLed ${KILLS} times, 2 inboxes, transient handler failures: per key, commit order at the consumer and in the effects`,
  async () => {
    await pool.query(`CREATE TABLE written_log (id bigint PRIMARY KEY, message_id text, ordering_key text);
      CREATE FUNCTION log_written() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        INSERT INTO written_log VALUES (NEW.id, NEW.message_id::text, NEW.ordering_key) ON CONFLICT DO NOTHING;
        RETURN NEW; END $$;
      CREATE TRIGGER log_written AFTER INSERT ON outbox_message FOR EACH ROW EXECUTE FUNCTION log_written();`);
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.ordering"));
    defer(() => consumer.close());
    const queue = uniqueName("rel.ordering.q");
    const inboxEnv = {
      INBOX_SINGLE_ACTIVE: "1",
      INBOX_RETRY_BASE_DELAY_MS: "50",
      INBOX_RETRY_MAX_DELAY_MS: "200",
      INBOX_SWEEP_INTERVAL_MS: "100",
      INBOX_CONCURRENCY: "8",
    };
    const broker = { queue, exchange: consumer.exchange, databaseUrl: url, amqpUrl, env: inboxEnv };
    // Both declare the queue (single active consumer: one receives at a time, in queue order); both handle.
    const inboxes = [
      await ih.startInbox({ ...broker, name: "inbox-a" }),
      await ih.startInbox({ ...broker, name: "inbox-b" }),
    ];
    const relayEnv = { OUTBOX_BATCH_SIZE: "100", OUTBOX_SWEEP_MIN_AGE_MS: "1000" };
    const startRelay = (name: string) => h.startWorker({ databaseUrl: url, amqpUrl, env: relayEnv, name });
    const relays: h.Proc[] = [];
    for (let r = 0; r < RELAYS; r++) relays.push(await startRelay(`relay-${r}`));

    // Writers: each transaction writes CHUNK messages of random keys; messages of every 20th key fail once in the
    // handler, one in three.
    let written = 0;
    const ids: string[] = [];
    const writer = async () => {
      while (written < MESSAGES) {
        const n = Math.min(CHUNK, MESSAGES - written);
        written += n;
        const writtenAt = Date.now();
        const messages = Array.from({ length: n }, (_, j) => {
          const k = Math.floor(Math.random() * KEYS);
          const i = written - n + j;
          return {
            exchange: consumer.exchange,
            routingKey: "ord.msg",
            key: `key-${k}`,
            payload: { i, writtenAt, key: `key-${k}`, failFirst: k % 20 === 0 && i % 3 === 0 },
          };
        });
        ids.push(...(await prisma.$transaction(async (tx) => tx.$enqueue(messages))));
      }
    };
    const writing = Promise.all(Array.from({ length: WRITERS }, () => writer()));

    // The kills, spread over the writing (and after it, if it ends first).
    const kills: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      await h.sleep(h.size(700, 4_000));
      const victim = k % RELAYS;
      expect((await h.killProc(relays[victim]!, "SIGKILL")).signal).toBe("SIGKILL");
      kills.push(`relay-${victim} killed at ${written}/${MESSAGES} written`);
      await h.sleep(100);
      relays[victim] = await startRelay(`relay-${victim}-${k + 1}`);
    }
    await writing;
    await h.waitForDelivery(pool, consumer, ids, h.size(120_000, 600_000));
    await ih.waitForEffects(pool, ids, { timeoutMs: h.size(120_000, 600_000) });

    const { rows } = await pool.query<{ message_id: string; ordering_key: string }>(
      "SELECT message_id, ordering_key FROM written_log ORDER BY id",
    );
    expect(rows).toHaveLength(ids.length);
    const expected = new Map<string, string[]>();
    for (const r of rows) expected.set(r.ordering_key, [...(expected.get(r.ordering_key) ?? []), r.message_id]);
    const keyOf = new Map(rows.map((r) => [r.message_id, r.ordering_key]));
    const atConsumer = new Map<string, string[]>();
    for (const a of consumer.arrivals) {
      const key = a.properties.headers?.["x-ordering-key"] as string;
      expect(key).toBe(keyOf.get(a.messageId));
      atConsumer.set(key, [...(atConsumer.get(key) ?? []), a.messageId]);
    }
    const { rows: effectRows } = await pool.query<{ messageId: string; key: string }>(
      `SELECT "messageId", payload->>'key' AS key FROM "Effect" ORDER BY id`,
    );
    const inEffects = new Map<string, string[]>();
    for (const e of effectRows) inEffects.set(e.key, [...(inEffects.get(e.key) ?? []), e.messageId]);

    for (const relay of relays) expect((await h.killProc(relay, "SIGTERM")).code).toBe(0);
    for (const box of inboxes) expect((await h.killProc(box, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ids.length });

    const consumerBad = outOfOrder(expected, atConsumer, true);
    const effectsBad = outOfOrder(expected, inEffects, false);
    const retries = Number((await pool.query("SELECT count(*) FROM inbox_message WHERE attempts > 1")).rows[0].count);
    const notes = `${kills.join("; ")}; ${expected.size} keys; ${retries} handled after a transient failure; keys out of order: consumer ${consumerBad.length}, effects ${effectsBad.length}`;
    const atRelay = h.computeRow("O1. per-key order: at the consumer", ids, consumer, notes);
    const atInbox = ih.computeInboxRow("O1. per-key order: handler effects", ids, await ih.readEffects(pool), notes);
    h.recordRow(atRelay);
    h.recordRow(atInbox);
    console.log(notes);
    h.expectNoLoss(atRelay);
    h.expectNoLoss(atInbox);
    expect(atInbox.duplicates).toBe(0);
    expect(consumerBad.slice(0, 5)).toEqual([]);
    expect(effectsBad.slice(0, 5)).toEqual([]);
    expect(retries).toBeGreaterThan(0);
    expect(expected.size).toBeGreaterThan(h.size(900, 999));
  },
  h.TEST_TIMEOUT,
);
