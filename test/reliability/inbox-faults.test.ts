// Inbox scenarios I3 to I6, each with inbox worker processes (the bundled CLI with fixtures/inbox-handlers.ts) and
// each message counted by its committed Effect rows: I3 every message published 3 times; I4 the inbox's PostgreSQL
// connections terminated over and over, and its broker connection cut, mid-stream; I5 a handler that always throws
// for some messages; I6 four inbox workers on one queue.
import { expect, it } from "vitest";
import { startTcpProxy } from "../support/tcp-proxy.js";
import * as h from "./harness.js";
import * as ih from "./inbox-harness.js";

const { amqpUrl, url, pool, defer } = await h.useScenario();

async function setUp(prefix: string): Promise<ih.Publisher> {
  await ih.resetInboxTables(pool);
  const publisher = await ih.startPublisher(amqpUrl, prefix);
  defer(() => publisher.close());
  return publisher;
}

/**
 * Publishes `chunk` messages every `everyMs` until stopped; stop() resolves with every id, or rejects with the error
 * that ended the stream. Stopped at the test's cleanup too (before the publisher closes), if the test failed first.
 */
function publishStream(publisher: ih.Publisher, chunk: number, everyMs: number) {
  const ids: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      ids.push(...(await publisher.publish(chunk, { from: ids.length })));
      await h.sleep(Math.max(0, everyMs - (Date.now() - started)));
    }
  })();
  loop.catch(() => {}); // reported by stop()
  const stream = {
    ids,
    async stop() {
      stopped = true;
      await loop;
      return ids;
    },
  };
  defer(() => stream.stop().catch(() => {}));
  return stream;
}

const STORM = h.size(1_000, 10_000);

it(
  `I3. every one of ${STORM} messages published 3 times, copies shuffled: each handled once`,
  async () => {
    const publisher = await setUp("rel.inbox.storm");
    const worker = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl });
    const ids = await publisher.publish(STORM, { times: 3 });
    await ih.waitForEffects(pool, ids);
    await h.waitUntil(() => (ih.inboxStats(worker).received ?? 0) >= 3 * STORM, "the worker's stats", 10_000);
    const stats = ih.inboxStats(worker);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: STORM });
    expect(stats).toMatchObject({ received: 3 * STORM, stored: STORM, duplicates: 2 * STORM, handled: STORM });

    const result = ih.computeInboxRow(
      "I3. duplicate storm (each message published 3 times)",
      ids,
      await ih.readEffects(pool),
      `${stats.received} deliveries: ${stats.stored} stored, ${stats.duplicates} deduplicated`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);

const ROUNDS = h.size(10, 40);

it(
  `I4. the inbox's PostgreSQL connections terminated ${ROUNDS} times mid-stream: recovers by itself, each handled once`,
  async () => {
    const publisher = await setUp("rel.inbox.pg");
    const env = {
      INBOX_SLEEP_MS: "5",
      INBOX_RETRY_BASE_DELAY_MS: "50",
      INBOX_RETRY_MAX_DELAY_MS: "500",
      INBOX_HANDLER_TIMEOUT_MS: "1000",
      INBOX_SWEEP_INTERVAL_MS: "100",
    };
    const worker = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl, env });
    const stream = publishStream(publisher, 20, 50);
    let terminated = 0;
    let inHandler = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await h.sleep(300);
      const hit = await ih.terminateInboxBackends(pool);
      terminated += hit.terminated;
      inHandler += hit.inHandler;
    }
    const ids = await stream.stop();
    // Rows claimed when a connection died may wait out their lease (handlerTimeoutMs + 15 s).
    await ih.waitForEffects(pool, ids, { timeoutMs: 60_000 });
    expect(worker.running, worker.log()).toBe(true);
    expect(await ih.inboxBackends(pool)).toBeGreaterThan(0);
    const stats = ih.inboxStats(worker);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ids.length });
    const unrecorded = worker.countLines(/ERROR inbox row/);

    const result = ih.computeInboxRow(
      "I4. inbox's DB connections terminated",
      ids,
      await ih.readEffects(pool),
      `${terminated} backends in ${ROUNDS} rounds (${inHandler} inside a handler); ${stats.retries} handler retries; ${unrecorded} outcomes not recorded (row back after its lease)`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    expect(terminated).toBeGreaterThanOrEqual(ROUNDS);
  },
  h.TEST_TIMEOUT,
);

const CUTS = h.size(1, 3);
const CUT_MS = h.size(2_000, 5_000);

it(
  `I4b. the inbox's broker connection cut ${CUTS} times for ${CUT_MS} ms mid-stream: reconnects, each handled once`,
  async () => {
    const publisher = await setUp("rel.inbox.broker");
    const broker = new URL(amqpUrl);
    const proxy = await startTcpProxy({ targetHost: broker.hostname, targetPort: Number(broker.port || 5672) });
    defer(() => proxy.close());
    const worker = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl: proxy.url(amqpUrl) });
    const stream = publishStream(publisher, 20, 50);
    const backlog: number[] = [];
    for (let cut = 0; cut < CUTS; cut++) {
      await h.sleep(1_000);
      // Connected and keeping up (after a cut, the reconnection's backoff may have outlasted the cut).
      await h.waitUntil(async () => (await publisher.ready()) < 100, "the worker to consume again", 60_000, 50);
      const lost = worker.countLines(/RabbitMQ connection lost/);
      proxy.cut();
      await worker.waitForLine(/RabbitMQ connection lost/, 10_000, lost + 1);
      await h.sleep(CUT_MS);
      // Published meanwhile, held by the broker.
      backlog.push(await publisher.ready());
      proxy.restore();
    }
    await h.sleep(1_000);
    const ids = await stream.stop();
    await ih.waitForEffects(pool, ids, { timeoutMs: 60_000 });
    expect(worker.running, worker.log()).toBe(true);
    const stats = ih.inboxStats(worker);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ids.length });
    expect(backlog.every((n) => n > 0)).toBe(true);

    const result = ih.computeInboxRow(
      "I4b. inbox's broker connection cut",
      ids,
      await ih.readEffects(pool),
      `queue during cuts: ${backlog.join(", ")}; ${stats.received} deliveries, ${stats.duplicates} redeliveries deduplicated`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);

const POISON_MESSAGES = h.size(1_000, 5_000);
const POISON_EVERY = 25;
const MAX_ATTEMPTS = 3;

it(
  `I5. a handler that always throws for 1 in ${POISON_EVERY} of ${POISON_MESSAGES} messages: those dead after ${MAX_ATTEMPTS} attempts, the others flow`,
  async () => {
    const publisher = await setUp("rel.inbox.poison");
    const env = {
      INBOX_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      INBOX_RETRY_BASE_DELAY_MS: "20",
      INBOX_RETRY_MAX_DELAY_MS: "100",
      INBOX_SWEEP_INTERVAL_MS: "50",
    };
    const worker = await ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl, env });
    const all = await publisher.publish(POISON_MESSAGES, {
      extra: (i) => (i % POISON_EVERY === 0 ? { poison: true } : {}),
    });
    const poison = all.filter((_, i) => i % POISON_EVERY === 0);
    const ids = all.filter((_, i) => i % POISON_EVERY !== 0);
    await ih.waitForEffects(pool, ids, { dead: poison.length });
    const stats = ih.inboxStats(worker);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
    expect(await ih.inboxStatuses(pool)).toEqual({ processed: ids.length, dead: poison.length });
    const { rows } = await pool.query<{ message_id: string; attempts: number; last_error: string }>(
      "SELECT message_id, attempts, last_error FROM inbox_message WHERE status = 'dead'",
    );
    expect(rows.map((r) => r.message_id).sort()).toEqual([...poison].sort());
    for (const r of rows) {
      expect(r.attempts).toBe(MAX_ATTEMPTS);
      expect(r.last_error).toMatch(/poison message \d+/);
    }
    const effects = await ih.readEffects(pool);
    // Each attempt wrote its Effect row before throwing: every one of those writes rolled back.
    expect(poison.filter((id) => effects.counts.has(id))).toEqual([]);

    const result = ih.computeInboxRow(
      "I5. poison messages (handler always throws)",
      ids,
      effects,
      `${poison.length} dead after ${MAX_ATTEMPTS} attempts with their error, no effect left; ${stats.retries} retries`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
  },
  h.TEST_TIMEOUT,
);

const WORKERS = 4;
const SHARED = h.size(2_000, 20_000);

it(
  `I6. ${WORKERS} inbox workers on one queue, ${SHARED} messages: each handled once, work shared`,
  async () => {
    const publisher = await setUp("rel.inbox.four");
    const workers = await Promise.all(
      Array.from({ length: WORKERS }, (_, i) =>
        ih.startInbox({ ...publisher, databaseUrl: url, amqpUrl, env: { INBOX_PREFETCH: "100" }, name: `inbox-${i}` }),
      ),
    );
    const ids = await publisher.publish(SHARED);
    await ih.waitForEffects(pool, ids);
    const exits = await Promise.all(workers.map((w) => h.killProc(w, "SIGTERM")));
    expect(exits.map((e) => e.code)).toEqual(workers.map(() => 0));
    const effects = await ih.readEffects(pool);
    const perWorker = workers.map((w) => [...effects.pids.values()].filter((pid) => pid === w.pid).length);

    const result = ih.computeInboxRow(
      `I6. ${WORKERS} inbox workers on one queue`,
      ids,
      effects,
      `handled per worker: ${perWorker.join("/")}`,
    );
    h.recordRow(result);
    h.expectNoLoss(result);
    expect(result.duplicates).toBe(0);
    expect(perWorker.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  },
  h.TEST_TIMEOUT,
);
