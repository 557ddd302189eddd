// Shared by the inbox scenarios (test/reliability/inbox-*.test.ts): inbox worker processes (the bundled CLI loading
// fixtures/inbox-handlers.ts), a publisher with confirms, the handlers' Effect rows counted by message id, the inbox's
// database connections, and an AMQP proxy that swallows the consumer's acks.
//
// The handler writes one Effect row per handling, in its transaction, into a table without a unique constraint: a
// message handled twice shows as two rows. So for the inbox, "lost" is a message with no Effect row, and "duplicates"
// counts double effects (rows beyond the first), whatever the broker delivered.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import type pg from "pg";
import { uniqueName } from "../support/consumer.js";
import { exitedInTest, type Proc, type SpawnOptions, spawnTsx } from "../support/process-harness.js";
import { effectCount } from "../support/tables.js";
import { startInterceptingProxy } from "../support/tcp-proxy.js";
import { sleep, waitUntil } from "../support/wait.js";
import { type ScenarioResult, scenarioResult } from "./harness.js";

export const INBOX_HANDLERS = "./test/reliability/fixtures/inbox-handlers.ts";

export interface InboxWorkerOptions {
  databaseUrl: string;
  amqpUrl: string;
  queue: string;
  exchange: string;
  /** INBOX_* settings of the handlers module (see fixtures/inbox-handlers.ts). */
  env?: Record<string, string>;
  name?: string;
  /** The handlers module (default: INBOX_HANDLERS). */
  handlers?: string;
  /** How the process is spawned (e.g. the soak run's extra Node options). */
  spawn?: SpawnOptions;
}

let inboxSeq = 0;

/** Starts `prisma-outbox inbox --handlers fixtures/inbox-handlers.ts` (or `handlers`) without waiting. */
export function spawnInbox(options: InboxWorkerOptions): Proc {
  const { databaseUrl, amqpUrl, queue, exchange, env = {}, name, handlers = INBOX_HANDLERS, spawn } = options;
  return spawnTsx(
    name ?? `inbox-${++inboxSeq}`,
    "src/cli/main.ts",
    ["inbox", "--handlers", handlers],
    { DATABASE_URL: databaseUrl, AMQP_URL: amqpUrl, INBOX_QUEUE: queue, INBOX_EXCHANGE: exchange, ...env },
    spawn,
  );
}

/** Starts an inbox worker and resolves once it consumes ("inbox started"). */
export async function startInbox(options: InboxWorkerOptions): Promise<Proc> {
  const proc = spawnInbox(options);
  await proc.waitForLine(/inbox started/, 30_000);
  return proc;
}

/** The totals of the last `inbox-stats` line of an inbox worker (see the fixture). */
export function inboxStats(proc: Proc): Record<string, number> {
  const line = [...proc.stdout].reverse().find((l) => l.startsWith("inbox-stats "));
  if (!line) return {};
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

// --- Broker side ---------------------------------------------------------------------------------------------------

export interface Publisher {
  readonly exchange: string;
  readonly queue: string;
  /**
   * Publishes one message per payload index, persistent, with a new messageId each and payload
   * `{ i, writtenAt, ...extra(i) }`, each `times` times (the copies shuffled among the others when `times` > 1), and
   * waits for the confirms. Resolves with the message ids.
   */
  publish(count: number, options?: { from?: number; times?: number; extra?: (i: number) => object }): Promise<string[]>;
  /** Messages ready in the queue (not delivered, or delivered and returned by a closed channel). */
  ready(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Declares a topic exchange and the inbox's queue bound to it with '#' (as the fixture's inbox declares them, so that
 * messages published before an inbox starts are kept), and publishes to it on a confirm channel.
 */
export async function startPublisher(amqpUrl: string, prefix: string): Promise<Publisher> {
  const exchange = uniqueName(`${prefix}.x`);
  const queue = uniqueName(`${prefix}.q`);
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createConfirmChannel();
  await channel.assertExchange(exchange, "topic", { durable: true });
  await channel.assertQueue(queue, { durable: true, arguments: {} });
  await channel.bindQueue(queue, exchange, "#");
  return {
    exchange,
    queue,
    async publish(count, { from = 0, times = 1, extra } = {}) {
      const writtenAt = Date.now();
      const messages = Array.from({ length: count }, (_, k) => {
        const i = from + k;
        return { id: randomUUID(), body: Buffer.from(JSON.stringify({ i, writtenAt, ...extra?.(i) })) };
      });
      const sends = messages.flatMap((m) => Array.from({ length: times }, () => m));
      if (times > 1) {
        for (let k = sends.length - 1; k > 0; k--) {
          const j = Math.floor(Math.random() * (k + 1));
          [sends[k], sends[j]] = [sends[j]!, sends[k]!];
        }
      }
      for (const m of sends) {
        if (!channel.publish(exchange, "inbox.msg", m.body, { messageId: m.id, persistent: true })) {
          await new Promise((resolve) => channel.once("drain", resolve));
        }
      }
      await channel.waitForConfirms();
      return messages.map((m) => m.id);
    },
    async ready() {
      return (await channel.checkQueue(queue)).messageCount;
    },
    async close() {
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

export interface AckSwallower {
  url(original: string): string;
  /** basic.ack frames received from clients and not forwarded. */
  readonly swallowed: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of RabbitMQ that reads the AMQP 0-9-1 frames the client sends and forwards all but basic.ack
 * (class 60, method 80): the inbox stores and commits its deliveries and believes it acked them, while the broker
 * still holds every one of them unacknowledged. A SIGKILL then is exactly "after the inbox COMMIT, before the ack",
 * with no timing luck: the broker delivers them all again.
 */
export async function startAckSwallower(targetHost: string, targetPort: number): Promise<AckSwallower> {
  let swallowed = 0;
  const proxy = await startInterceptingProxy({ targetHost, targetPort, name: "The AMQP proxy" }, (client, upstream) => {
    upstream.pipe(client);
    let pending: Buffer = Buffer.alloc(0);
    let header = true;
    client.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      for (;;) {
        if (header) {
          // "AMQP" 0 0 9 1
          if (pending.length < 8) break;
          out.push(pending.subarray(0, 8));
          pending = pending.subarray(8);
          header = false;
          continue;
        }
        // A frame: type (1), channel (2), size (4), payload (size), frame-end 0xCE.
        if (pending.length < 7) break;
        const total = 7 + pending.readUInt32BE(3) + 1;
        if (pending.length < total) break;
        const frame = pending.subarray(0, total);
        pending = pending.subarray(total);
        const isAck = frame[0] === 1 && frame.readUInt16BE(7) === 60 && frame.readUInt16BE(9) === 80;
        if (isAck) swallowed++;
        else out.push(frame);
      }
      if (out.length > 0) upstream.write(Buffer.concat(out));
    });
  });
  return {
    url: proxy.url,
    get swallowed() {
      return swallowed;
    },
    close: proxy.close,
  };
}

// --- Database side -------------------------------------------------------------------------------------------------

export interface Effects {
  /** Effect rows per message id. */
  counts: Map<string, number>;
  /** Pids of the processes whose handlers wrote them, per message id (first row). */
  pids: Map<string, number>;
  /** Longest handledAt - writtenAt over the first effect of each message (ms). */
  maxDelayMs: number;
  total: number;
}

/** The handlers' committed Effect rows. */
export async function readEffects(pool: pg.Pool): Promise<Effects> {
  const { rows } = await pool.query<{
    messageId: string;
    payload: { writtenAt?: number; handledAt?: number; pid?: number };
  }>('SELECT "messageId", payload FROM "Effect" ORDER BY id');
  const counts = new Map<string, number>();
  const pids = new Map<string, number>();
  let maxDelayMs = 0;
  for (const r of rows) {
    const seen = counts.get(r.messageId) ?? 0;
    counts.set(r.messageId, seen + 1);
    if (seen > 0) continue;
    if (r.payload?.pid !== undefined) pids.set(r.messageId, r.payload.pid);
    const { writtenAt, handledAt } = r.payload ?? {};
    if (typeof writtenAt === "number" && typeof handledAt === "number") {
      maxDelayMs = Math.max(maxDelayMs, handledAt - writtenAt);
    }
  }
  return { counts, pids, maxDelayMs, total: rows.length };
}

export { effectCount };

/** Inbox rows by status, e.g. { processed: 10, pending: 2 }. */
export async function inboxStatuses(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ status: string; n: string }>(
    "SELECT status, count(*) AS n FROM inbox_message GROUP BY status",
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/**
 * Waits until every expected id has its effect and its inbox row is no longer pending, then until the Effect table
 * stops growing for `settleMs` (a double effect would come after the first).
 */
export async function waitForEffects(
  pool: pg.Pool,
  expectedIds: readonly string[],
  { timeoutMs = 90_000, settleMs = 500, dead = 0 }: { timeoutMs?: number; settleMs?: number; dead?: number } = {},
): Promise<void> {
  const expected = new Set(expectedIds);
  let have = 0;
  let pending = -1;
  await waitUntil(
    async () => {
      const { rows } = await pool.query<{ messageId: string }>('SELECT DISTINCT "messageId" FROM "Effect"');
      have = rows.filter((r) => expected.has(r.messageId)).length;
      pending = (await inboxStatuses(pool)).pending ?? 0;
      return have === expected.size && pending === 0;
    },
    () => {
      const exits = exitedInTest();
      const died = exits.length === 0 ? "" : `; ${exits.join(", ")}`;
      return `effects: ${have}/${expected.size} messages handled, ${pending} inbox rows pending (${dead} expected dead)${died}`;
    },
    timeoutMs,
    100,
  );
  let seen = -1;
  for (;;) {
    const now = await effectCount(pool);
    if (now === seen) return;
    seen = now;
    await sleep(settleMs);
  }
}

/** The row of an inbox scenario: lost = expected messages without an effect, duplicates = double effects. */
export function computeInboxRow(
  scenario: string,
  expectedIds: readonly string[],
  effects: Effects,
  notes?: string,
): ScenarioResult {
  return scenarioResult(scenario, expectedIds, effects.counts, effects.maxDelayMs, notes);
}

/** The inbox worker's connections: its own pool ('prisma-outbox inbox') and its handlers' Prisma client. */
export async function inboxBackends(pool: pg.Pool): Promise<number> {
  const r = await pool.query(
    `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
     AND application_name IN ('prisma-outbox inbox', 'inbox-handlers')`,
  );
  return Number(r.rows[0].count);
}

/**
 * Handler transactions open right now with their Effect row written: the handlers' Prisma connections idle in a
 * transaction that has a transaction id (the INSERT), i.e. inside a handler, before its COMMIT.
 */
export async function handlersInFlight(pool: pg.Pool): Promise<number> {
  const r = await pool.query(
    `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'inbox-handlers'
     AND state = 'idle in transaction' AND backend_xid IS NOT NULL`,
  );
  return Number(r.rows[0].count);
}

/** Terminates every connection of the inbox workers (pool and handlers' Prisma client); returns how many. */
export async function terminateInboxBackends(pool: pg.Pool): Promise<{ terminated: number; inHandler: number }> {
  const r = await pool.query<{ ok: boolean; in_handler: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok,
            (application_name = 'inbox-handlers' AND state = 'idle in transaction' AND backend_xid IS NOT NULL)
              AS in_handler
     FROM pg_stat_activity WHERE datname = current_database()
     AND application_name IN ('prisma-outbox inbox', 'inbox-handlers')`,
  );
  const ok = r.rows.filter((row) => row.ok);
  return { terminated: ok.length, inHandler: ok.filter((row) => row.in_handler).length };
}

/** Empties the inbox and Effect tables: each scenario of a file counts only its own rows. */
export async function resetInboxTables(pool: pg.Pool): Promise<void> {
  await pool.query('TRUNCATE inbox_message, "Effect"');
}
