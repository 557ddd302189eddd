// Inbox scenarios I1 and I2: the inbox worker (the bundled CLI with fixtures/inbox-handlers.ts) SIGKILLed where it
// hurts. I1: after its inbox COMMIT and before its ack reached the broker (an AMQP proxy swallows the acks), so the
// broker delivers everything again to the next worker. I2: inside handlers, with their writes done and not committed;
// those roll back, and the rows are claimed again once the killed worker's lease runs out. Each message must have
// exactly one committed effect.
import { expect, it } from "vitest";
import * as h from "./harness.js";
import * as ih from "./inbox-harness.js";

const { amqpUrl, url, pool, defer } = await h.useScenario();
const broker = new URL(amqpUrl);

const ACK_MESSAGES = h.size(500, 2_000);

it(
  `I1. inbox SIGKILLed after its COMMIT and before the ack of ${ACK_MESSAGES} messages: redelivered, deduplicated`,
  async () => {
    await ih.resetInboxTables(pool);
    const publisher = await ih.startPublisher(amqpUrl, "rel.inbox.ack");
    defer(() => publisher.close());
    const proxy = await ih.startAckSwallower(broker.hostname, Number(broker.port || 5672));
    defer(() => proxy.close());
    const ids = await publisher.publish(ACK_MESSAGES);
    // Prefetch covers them all: with no ack reaching the broker, it would stop delivering at the prefetch limit.
    const env = { INBOX_PREFETCH: String(ACK_MESSAGES) };
    const first = await ih.startInbox({
      ...publisher,
      databaseUrl: url,
      amqpUrl: proxy.url(amqpUrl),
      env,
      name: "acks-lost",
    });
    // Everything stored, committed and handled; the worker acked it all, and the proxy kept every ack.
    await ih.waitForEffects(pool, ids, { settleMs: 100 });
    await h.waitUntil(() => proxy.swallowed > 0, "the worker's acks", 10_000);
    const stored = await ih.inboxStatuses(pool);
    expect(stored).toEqual({ processed: ACK_MESSAGES });
    expect((await h.killProc(first, "SIGKILL")).signal).toBe("SIGKILL");
    // The window was hit: every message is committed in the inbox, and the broker, which never saw an ack, put every
    // one of them back in the queue when the connection died.
    await h.waitUntil(async () => (await publisher.ready()) === ACK_MESSAGES, "the unacked messages back in the queue");
    const swallowed = proxy.swallowed;

    const second = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl, env, name: "redelivered" });
    await h.waitUntil(async () => (await publisher.ready()) === 0, "the redeliveries consumed and acked", 30_000);
    await h.waitUntil(() => (ih.inboxStats(second).received ?? 0) >= ACK_MESSAGES, "the second worker's stats", 10_000);
    await ih.waitForEffects(pool, ids);
    const stats = ih.inboxStats(second);
    expect((await h.killProc(second, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ACK_MESSAGES });
    // Every redelivery was a duplicate of a committed row: nothing stored, nothing handled again.
    expect(stats.stored).toBe(0);
    expect(stats.duplicates).toBe(ACK_MESSAGES);

    const result = ih.computeInboxRow(
      "I1. inbox SIGKILLed after COMMIT, before the ack",
      ids,
      await ih.readEffects(pool),
      `${swallowed} ack frames swallowed; ${ACK_MESSAGES} back in the queue after the kill, all redelivered: ${stats.duplicates} deduplicated, ${stats.stored} stored`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);

const HANDLER_MESSAGES = h.size(400, 2_000);
const HANDLER_KILLS = h.size(3, 8);
/** The handler sleeps this long after its write: most of a worker's time is spent inside handlers. */
const SLEEP_MS = 40;

it(
  `I2. inbox SIGKILLed ${HANDLER_KILLS} times inside handlers: their writes roll back, retried after the lease, handled once`,
  async () => {
    await ih.resetInboxTables(pool);
    const publisher = await ih.startPublisher(amqpUrl, "rel.inbox.handler");
    defer(() => publisher.close());
    const ids = await publisher.publish(HANDLER_MESSAGES);
    const env = {
      INBOX_SLEEP_MS: String(SLEEP_MS),
      INBOX_CONCURRENCY: "4",
      INBOX_PREFETCH: "50",
      // The lease of a claim is handlerTimeoutMs + 15 s: a short timeout brings the killed worker's rows back soonest.
      INBOX_HANDLER_TIMEOUT_MS: "1000",
      INBOX_SWEEP_INTERVAL_MS: "100",
    };
    const kills: string[] = [];
    /** Rows a killed worker had claimed and not completed (they wait for their lease to run out). */
    const rolledBack = new Set<string>();
    for (let k = 0; k < HANDLER_KILLS; k++) {
      const before = await ih.effectCount(pool);
      const target = before + Math.floor(HANDLER_MESSAGES / (HANDLER_KILLS + 2) / 2);
      const worker = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl, env, name: `handling-${k}` });
      await h.waitUntil(
        async () => (await ih.effectCount(pool)) >= target,
        `${target} effects before kill ${k}`,
        30_000,
      );
      // The kill lands while handlers have written their Effect rows and not committed them.
      await h.waitUntil(
        async () => (await ih.handlersInFlight(pool)) > 0,
        "a handler inside its transaction",
        10_000,
        2,
      );
      expect((await h.killProc(worker, "SIGKILL")).signal).toBe("SIGKILL");
      await h.waitUntil(async () => (await ih.inboxBackends(pool)) === 0, "the killed worker's connections to end");
      // Rows claimed by the dead worker and not completed: their handlers' writes rolled back with the connection.
      const { rows } = await pool.query<{ message_id: string }>(
        "SELECT message_id FROM inbox_message WHERE status = 'pending' AND attempts > 0",
      );
      const orphaned = rows.map((r) => r.message_id);
      const effects = await ih.readEffects(pool);
      expect(orphaned.filter((id) => effects.counts.has(id))).toEqual([]);
      const fresh = orphaned.filter((id) => !rolledBack.has(id));
      expect(fresh.length, "rows in handlers of the killed worker").toBeGreaterThan(0);
      for (const id of fresh) rolledBack.add(id);
      kills.push(`kill ${k}: ${effects.total} effects, ${fresh.length} in handlers rolled back`);
      await h.sleep(h.CHAOS ? 200 : 50);
    }
    const last = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl, env, name: "final" });
    await ih.waitForEffects(pool, ids, { timeoutMs: 60_000 });
    expect((await h.killProc(last, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: HANDLER_MESSAGES });
    // The rolled-back ones were handled by a later attempt.
    const { rows: attempts } = await pool.query<{ message_id: string; attempts: number }>(
      "SELECT message_id, attempts FROM inbox_message WHERE attempts > 1",
    );
    const retried = new Set(attempts.map((r) => r.message_id));
    expect([...rolledBack].filter((id) => !retried.has(id))).toEqual([]);

    const result = ih.computeInboxRow(
      "I2. inbox SIGKILLed inside handlers",
      ids,
      await ih.readEffects(pool),
      `${HANDLER_KILLS} kills, ${rolledBack.size} handlers rolled back, each handled on a later attempt`,
    );
    h.recordRow(result);
    console.log(kills.join("; "));
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);
