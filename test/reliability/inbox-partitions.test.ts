// Scenario O2, per-key order with partitioned inbox queues (docs/scaling.md#partitioned-inbox-queues): writers commit
// messages with many ordering keys, relays publish them, RabbitMQ's consistent-hash exchange routes each key to one of
// 16 partition queues, and 3 inbox workers share the partitions. Mid-run one worker is SIGKILLed, started again, a
// fourth joins, and the restarted one is SIGKILLed again (and left dead); the handler fails once on 1 message in 50.
// - nothing lost, no double effect;
// - per key, the handler effects are exactly the commit order (outbox id order, logged by a trigger as in O1);
// - every live worker handled a share (printed);
// - the longest hand-over: from a kill to all 16 partitions owned again, read from the workers' `inbox-partitions
//   owned=` lines.
import amqp from "amqplib";
import { expect, it } from "vitest";
import { declarePartitions } from "../../src/transport/amqp/partitions.js";
import { uniqueName } from "../support/consumer.js";
import { deletePartitions, requireHashExchange } from "../support/partitions.js";
import * as h from "./harness.js";
import * as ih from "./inbox-harness.js";

const { amqpUrl, url, pool, prisma, defer } = await h.useScenario();

const MESSAGES = h.size(3_000, 50_000);
const KEYS = h.size(200, 1_000);
const PARTITIONS = 16;
const RELAYS = 2;
const WRITERS = 8;
const CHUNK = 10;
// Short size: 8 writers x 10 messages every 800 ms = 100/s, below what the inboxes handle on a loaded 2-core machine
// (about 150/s), so that no backlog builds up while the events run (at 320/s one did: processes took 20 s to start
// and the run about 100 s); about 60 s in all.
const PACE_MS = h.size(800, 100);
/** Short size: a SIGKILLed worker's claimed rows come back after 1 s + 3 s instead of 1 s + 15 s (the default). */
const LEASE_MARGIN_MS = h.size("3000", "15000");

/** The partitions a worker consumes, from its last `inbox-partitions owned=` line. */
function owned(proc: h.Proc): number[] {
  const line = [...proc.stdout].reverse().find((l) => l.startsWith("inbox-partitions owned="));
  const list = line?.slice("inbox-partitions owned=".length) ?? "";
  return list === "" ? [] : list.split(",").map(Number);
}

it(
  `O2. at least ${MESSAGES} messages on ${KEYS} keys, ${PARTITIONS} partitions, 3 inboxes, one SIGKILLed twice, one joining, transient handler failures: per key, commit order in the effects`,
  async () => {
    const t0 = Date.now();
    /** Seconds since the test began, for the events line (where a run spends its time). */
    const t = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    const connection = await amqp.connect(amqpUrl);
    defer(() => connection.close().catch(() => {}));
    await requireHashExchange(connection, uniqueName("rel.part.probe"));
    const channel = await connection.createChannel();
    const exchange = uniqueName("rel.part.x");
    const queue = uniqueName("rel.part.q");
    await channel.assertExchange(exchange, "topic", { durable: true });
    defer(async () => {
      await deletePartitions(channel, queue, PARTITIONS + 1);
      await channel.deleteExchange(exchange).catch(() => {});
    });
    // Declared before the first write, so that nothing the relays publish before a worker starts is unroutable.
    await declarePartitions(amqpUrl, {
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      exchanges: [],
      partitions: PARTITIONS,
    });
    await pool.query(`CREATE TABLE written_log (id bigint PRIMARY KEY, message_id text, ordering_key text);
      CREATE FUNCTION log_written() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        INSERT INTO written_log VALUES (NEW.id, NEW.message_id::text, NEW.ordering_key) ON CONFLICT DO NOTHING;
        RETURN NEW; END $$;
      CREATE TRIGGER log_written AFTER INSERT ON outbox_message FOR EACH ROW EXECUTE FUNCTION log_written();`);

    const inboxEnv = {
      INBOX_PARTITIONS: String(PARTITIONS),
      INBOX_REBALANCE_MS: "500",
      INBOX_HANDLER_TIMEOUT_MS: "1000",
      INBOX_RETRY_BASE_DELAY_MS: "50",
      INBOX_RETRY_MAX_DELAY_MS: "200",
      INBOX_SWEEP_INTERVAL_MS: "100",
      INBOX_CONCURRENCY: "8",
      INBOX_LEASE_MARGIN_MS: LEASE_MARGIN_MS,
    };
    const startInbox = (name: string) =>
      ih.startInbox({ queue, exchange, databaseUrl: url, amqpUrl, env: inboxEnv, name });
    const all: h.Proc[] = [];
    const live: h.Proc[] = [];
    // Started together: a worker takes seconds to start on a loaded machine (tsx, Prisma), one after another it added up.
    for (const proc of await Promise.all(["inbox-a", "inbox-b", "inbox-c"].map(startInbox))) {
      all.push(proc);
      live.push(proc);
    }
    const union = () => new Set(live.flatMap(owned)).size;
    await expect.poll(union, { timeout: 30_000 }).toBe(PARTITIONS);
    const relayEnv = { OUTBOX_BATCH_SIZE: "100", OUTBOX_SWEEP_MIN_AGE_MS: "1000" };
    const relays: h.Proc[] = [];
    for (let r = 0; r < RELAYS; r++) {
      relays.push(await h.startWorker({ databaseUrl: url, amqpUrl, env: relayEnv, name: `relay-${r}` }));
    }

    // Writers: each transaction writes CHUNK messages of random keys; 1 message in 50 fails once in the handler.
    // They write at least MESSAGES, and go on until the kills and the join are over (a restarted or joining worker
    // takes seconds to start on a loaded machine: without new messages it could find its partitions drained).
    let written = 0;
    let eventsDone = false;
    const ids: string[] = [];
    const writer = async () => {
      while (written < MESSAGES || !eventsDone) {
        const n = CHUNK;
        written += n;
        const writtenAt = Date.now();
        const messages = Array.from({ length: n }, (_, j) => {
          const k = Math.floor(Math.random() * KEYS);
          const i = written - n + j;
          return {
            exchange,
            routingKey: "part.msg",
            key: `key-${k}`,
            payload: { i, writtenAt, key: `key-${k}`, failFirst: i % 50 === 0 },
          };
        });
        ids.push(...(await prisma.$transaction(async (tx) => tx.$enqueue(messages))));
        // Paced, so that the stream still flows during the kills and the join (about 30 s short, 60 s full).
        await h.sleep(PACE_MS);
      }
    };
    const writing = Promise.all(Array.from({ length: WRITERS }, () => writer()));

    // A kill of a worker while the others handle; resolves with the hand-over: kill to all partitions owned again.
    const events: string[] = [];
    const handOvers: number[] = [];
    const kill = async (victim: h.Proc) => {
      const at = await ih.effectCount(pool);
      const exit = await h.killProc(victim, "SIGKILL");
      expect(exit.signal).toBe("SIGKILL");
      live.splice(live.indexOf(victim), 1);
      await expect.poll(union, { timeout: 15_000, interval: 20 }).toBe(PARTITIONS);
      const ms = Date.now() - exit.at;
      handOvers.push(ms);
      events.push(`${victim.name} SIGKILLed at ${at} handled (${t()}), partitions owned again in ${ms} ms`);
    };
    // Each event once the handlers have done a share of the run, whatever the machine's speed: mid-stream.
    const handled = (fraction: number) =>
      h.waitUntil(
        async () => (await ih.effectCount(pool)) >= MESSAGES * fraction,
        `${fraction * 100}% of the messages handled`,
        h.size(60_000, 600_000),
        20,
      );
    await handled(0.15);
    await kill(live[0]!);
    const restarted = await startInbox("inbox-a2");
    all.push(restarted);
    live.push(restarted);
    events.push(`inbox-a2 started at ${await ih.effectCount(pool)} handled (${t()})`);
    // Spawned now and joining once started (and 40% handled): its start overlaps the stream instead of following it.
    const joining = startInbox("inbox-d");
    joining.catch(() => {}); // Awaited below; not an unhandled rejection meanwhile.
    await handled(0.4);
    const joined = await joining;
    all.push(joined);
    live.push(joined);
    events.push(`inbox-d joined at ${await ih.effectCount(pool)} handled (${t()})`);
    await expect.poll(() => live.map((p) => owned(p).length).sort(), { timeout: 20_000 }).toEqual([4, 4, 4, 4]);
    await handled(0.65);
    await kill(restarted);
    await h.sleep(h.size(2_000, 5_000));
    eventsDone = true;
    await writing;
    events.push(`writers done at ${written} written (${t()})`);
    // Rows the killed workers had claimed wait out their lease (handlerTimeoutMs + LEASE_MARGIN_MS).
    await ih.waitForEffects(pool, ids, { timeoutMs: h.size(120_000, 600_000) });
    expect(await h.outboxCount(pool)).toBe(0);
    events.push(`all handled (${t()})`);

    const { rows } = await pool.query<{ message_id: string; ordering_key: string }>(
      "SELECT message_id, ordering_key FROM written_log ORDER BY id",
    );
    expect(rows).toHaveLength(ids.length);
    const rank = new Map(rows.map((r, n) => [r.message_id, n]));
    const { rows: effectRows } = await pool.query<{ messageId: string; key: string; pid: number }>(
      `SELECT "messageId", payload->>'key' AS key, (payload->>'pid')::int AS pid FROM "Effect" ORDER BY id`,
    );
    // Per key, the effects' commit order (Effect id) must follow the outbox commit order, strictly.
    const last = new Map<string, number>();
    const outOfOrder = new Set<string>();
    for (const e of effectRows) {
      const r = rank.get(e.messageId) ?? -1;
      if (r <= (last.get(e.key) ?? -1)) outOfOrder.add(e.key);
      last.set(e.key, r);
    }
    const handledBy = new Map<number, number>();
    for (const e of effectRows) handledBy.set(e.pid, (handledBy.get(e.pid) ?? 0) + 1);
    const shares = all.map((p) => `${p.name} ${handledBy.get(p.pid) ?? 0}${live.includes(p) ? "" : " (killed)"}`);

    for (const relay of relays) expect((await h.killProc(relay, "SIGTERM")).code).toBe(0);
    for (const box of live) expect((await h.killProc(box, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ids.length });

    const retries = Number((await pool.query("SELECT count(*) FROM inbox_message WHERE attempts > 1")).rows[0].count);
    const longest = Math.max(...handOvers);
    const keys = new Set(rows.map((r) => r.ordering_key)).size;
    const notes = `${events.join("; ")}; longest hand-over ${(longest / 1000).toFixed(1)} s; ${keys} keys; ${retries} handled after a transient failure; handled per worker: ${shares.join(", ")}; keys out of order in the effects: ${outOfOrder.size}`;
    const result = ih.computeInboxRow(
      "O2. partitioned queues: per-key order in the effects",
      ids,
      await ih.readEffects(pool),
      notes,
    );
    h.recordRow(result);
    console.log(notes);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    expect([...outOfOrder].slice(0, 5)).toEqual([]);
    expect(retries).toBeGreaterThan(0);
    for (const p of live) expect(handledBy.get(p.pid) ?? 0, `${p.name}'s share`).toBeGreaterThan(0);
    expect(longest).toBeLessThan(10_000);
  },
  h.TEST_TIMEOUT,
);
