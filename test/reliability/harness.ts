// Shared by the reliability suite (test/reliability/*.test.ts): worker processes and their stats, outbox and backend
// queries, writers, and the result row of each scenario (processes: test/support/process-harness.ts; the COMMIT
// gate: commit-gate.ts).
//
// Each scenario is a real run against the real PostgreSQL and RabbitMQ. Consumers count arrivals by message id, so
// "lost" and "duplicate" are exact. Two sizes: the default (CI) and CHAOS=1 (more messages, more faults).
//
// A scenario file imports it whole (`import * as h from "./harness.js"`, and `ih` for inbox-harness.ts) and starts
// with `useScenario()`: its imports and preamble then name only what it adds.
import { appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, expect, inject } from "vitest";
import type { OutboxMessageInput } from "../../src/index.js";
import { outbox } from "../../src/index.js";
import type { startCountingConsumer } from "../support/consumer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { type Proc, type SpawnOptions, spawnTsx, useProcessCleanup } from "../support/process-harness.js";
import { outboxCount } from "../support/tables.js";
import { sleep, waitUntil } from "../support/wait.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** JSON-lines file the scenarios append their rows to; set by test/reliability/global-setup.ts. */
    reliabilityRows: string;
  }
}

// --- Sizes ---------------------------------------------------------------------------------------------------------

/** `CHAOS=1`: the heavy run (`npm run chaos`). */
export const CHAOS = process.env.CHAOS === "1";
/** The default size, or the CHAOS=1 one. */
export function size<T>(normal: T, chaos: T): T {
  return CHAOS ? chaos : normal;
}
/** Per test; given explicitly so that a file also runs under the root vitest.config.ts (60 s default). */
export const TEST_TIMEOUT = size(180_000, 900_000);

/** A random integer in [min, max]. */
export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

export interface WorkerOptions {
  databaseUrl: string;
  amqpUrl: string;
  /** OUTBOX_* settings (and anything else) for this worker. */
  env?: Record<string, string>;
  args?: string[];
  name?: string;
  /** How the process is spawned (e.g. the soak run's extra Node options). */
  spawn?: SpawnOptions;
}

let workerSeq = 0;

/** Starts the bundled worker CLI (`src/cli/main.ts worker`) and resolves once it printed "relay started". */
export async function startWorker(options: WorkerOptions): Promise<Proc> {
  const worker = spawnWorker(options);
  await worker.waitForLine(/relay started/, 30_000);
  return worker;
}

/** Starts the bundled worker CLI without waiting for it. */
export function spawnWorker({ databaseUrl, amqpUrl, env = {}, args = [], name, spawn }: WorkerOptions): Proc {
  return spawnTsx(
    name ?? `worker-${++workerSeq}`,
    "src/cli/main.ts",
    ["worker", ...args],
    { DATABASE_URL: databaseUrl, AMQP_URL: amqpUrl, ...env },
    spawn,
  );
}

/** The "relay stopped" line's stats of a worker stopped gracefully, e.g. { published: 120, deadLettered: 0, ... }. */
export function stoppedStats(proc: Proc): Record<string, number> | undefined {
  const line = proc.lines.find((l) => l.includes("relay stopped"));
  if (!line) return undefined;
  return Object.fromEntries([...line.matchAll(/ (\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

// --- Database ------------------------------------------------------------------------------------------------------

/** The relay's connections (pool and LISTEN) to this database, as the worker names them. */
export async function relayBackends(pool: pg.Pool): Promise<number> {
  const r = await pool.query(
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'prisma-outbox%' AND datname = current_database()",
  );
  return Number(r.rows[0].count);
}

/**
 * The relay's batches open right now with rows claimed: a relay backend idle in a transaction that has a transaction
 * id (the claim deleted rows; a claim that found nothing deletes nothing and gets none), i.e. a batch between its
 * claim and its COMMIT or ROLLBACK, waiting for the broker's confirms.
 */
export async function openRelayBatches(pool: pg.Pool, idleForMs = 0): Promise<number> {
  const r = await pool.query(
    `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'prisma-outbox%' AND datname = current_database()
     AND state = 'idle in transaction' AND backend_xid IS NOT NULL
     AND clock_timestamp() - state_change >= make_interval(secs => $1::float8 / 1000)`,
    [idleForMs],
  );
  return Number(r.rows[0].count);
}

/**
 * Resolves once a batch is stuck in flight: claimed and waiting for confirms for at least 300 ms. Any batch is idle
 * in transaction for a moment between its confirms and its COMMIT; only one that waits for a silent broker stays so.
 * For tests that hold or silence the broker.
 */
export async function waitForOpenRelayBatch(pool: pg.Pool, timeoutMs = 30_000): Promise<void> {
  await waitUntil(async () => (await openRelayBatches(pool, 300)) > 0, "a relay batch stuck in flight", timeoutMs, 5);
}

/** How many of `ids` are in the outbox now (committed and not deleted by a committed claim). */
export async function inOutbox(pool: pg.Pool, ids: readonly string[]): Promise<number> {
  const r = await pool.query("SELECT count(*) FROM outbox_message WHERE message_id = ANY($1::uuid[])", [ids]);
  return Number(r.rows[0].count);
}

export interface DeadLetterRow {
  message_id: string;
  attempts: number;
  last_error: string;
}

/** The dead letters in the scenario's database. */
export async function deadLetterRows(pool: pg.Pool): Promise<DeadLetterRow[]> {
  return (await pool.query<DeadLetterRow>("SELECT message_id::text, attempts, last_error FROM outbox_dead_letter"))
    .rows;
}

/**
 * OUTBOX_* settings of a worker that gives up on a refused message quickly: `maxAttempts` attempts 20 to 100 ms apart,
 * a sweep every 100 ms of rows of any age, then the dead letter.
 */
export function fastRetries(maxAttempts: number): Record<string, string> {
  return {
    OUTBOX_MAX_ATTEMPTS: String(maxAttempts),
    OUTBOX_RETRY_BASE_DELAY_MS: "20",
    OUTBOX_RETRY_MAX_DELAY_MS: "100",
    OUTBOX_SWEEP_INTERVAL_MS: "100",
    OUTBOX_SWEEP_MIN_AGE_MS: "0",
  };
}

/**
 * Terminates every relay connection to this database; returns how many it terminated, and how many of them were in a
 * batch with rows claimed (as `openRelayBatches` counts them) when terminated. With `onlyDuringBatch`, terminates
 * them only if one of them is in such a batch (in the same statement: no time for the batch to end in between), else
 * none.
 */
export async function terminateRelayBackends(
  pool: pg.Pool,
  { onlyDuringBatch = false }: { onlyDuringBatch?: boolean } = {},
): Promise<{ terminated: number; inBatch: number }> {
  const r = await pool.query<{ ok: boolean; in_batch: boolean }>(
    `WITH relay AS MATERIALIZED (
       SELECT pid, (state = 'idle in transaction' AND backend_xid IS NOT NULL) AS in_batch FROM pg_stat_activity
       WHERE application_name LIKE 'prisma-outbox%' AND datname = current_database()
     )
     SELECT pg_terminate_backend(pid) AS ok, in_batch FROM relay
     WHERE NOT $1::boolean OR EXISTS (SELECT 1 FROM relay WHERE in_batch)`,
    [onlyDuringBatch],
  );
  const terminated = r.rows.filter((row) => row.ok);
  return { terminated: terminated.length, inBatch: terminated.filter((row) => row.in_batch).length };
}

/**
 * Terminates every relay connection to this database as soon as one of them is in a batch with rows claimed (polling
 * for up to `timeoutMs`), else, past that, regardless.
 */
export async function terminateRelayBackendsMidBatch(
  pool: pg.Pool,
  timeoutMs = 2_000,
): Promise<{ terminated: number; inBatch: number }> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const hit = await terminateRelayBackends(pool, { onlyDuringBatch: true });
    if (hit.terminated > 0) return hit;
    await sleep(5);
  }
  return terminateRelayBackends(pool);
}

/** After a relay was killed: its backends are gone, so its open transactions have rolled back. */
export async function waitForNoRelayBackends(pool: pg.Pool, timeoutMs = 30_000): Promise<void> {
  await waitUntil(async () => (await relayBackends(pool)) === 0, "the killed relay's backends to end", timeoutMs, 50);
}

// --- Writing -------------------------------------------------------------------------------------------------------

/** What the scenarios write with: an outbox-extended Prisma client (or its transaction client). */
export interface Enqueuer {
  $enqueue(messages: OutboxMessageInput | readonly OutboxMessageInput[]): Promise<string[]>;
}

export interface WriteOptions {
  exchange: string;
  count: number;
  /** Messages per $enqueue (one INSERT, one transaction). @defaultValue 500 */
  chunk?: number;
  /** @defaultValue () => "rel.msg" */
  routingKey?: (i: number) => string;
  /** Index of the first message (payload `i`). @defaultValue 0 */
  from?: number;
}

/**
 * Writes `count` messages in chunks; each payload carries `writtenAt: Date.now()` taken just before its write, so
 * that arrival minus writtenAt is an upper bound of the commit-to-delivery delay. Resolves with their ids.
 */
export async function writeMessages(prisma: Enqueuer, options: WriteOptions): Promise<string[]> {
  const { exchange, count, chunk = 500, routingKey = () => "rel.msg", from = 0 } = options;
  const ids: string[] = [];
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const writtenAt = Date.now();
    const batch = Array.from({ length: n }, (_, j) => ({
      exchange,
      routingKey: routingKey(from + start + j),
      payload: { i: from + start + j, writtenAt },
    }));
    ids.push(...(await prisma.$enqueue(batch)));
  }
  return ids;
}

export interface StreamWriter {
  /** Ids written so far (committed). */
  readonly ids: string[];
  /** Errors of failed writes (each failed write lost nothing: its transaction rolled back). */
  readonly errors: Error[];
  /** Stops writing and resolves with every id written. */
  stop(): Promise<string[]>;
}

/** Writes `chunk` messages every `everyMs` until stopped: a steady stream of committed messages. */
export function streamMessages(
  prisma: Enqueuer,
  options: { exchange: string; chunk: number; everyMs: number; routingKey?: (i: number) => string },
): StreamWriter {
  const ids: string[] = [];
  const errors: Error[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        const written = await writeMessages(prisma, {
          exchange: options.exchange,
          count: options.chunk,
          chunk: options.chunk,
          from: ids.length,
          ...(options.routingKey ? { routingKey: options.routingKey } : {}),
        });
        ids.push(...written);
      } catch (error) {
        errors.push(error as Error);
      }
      await sleep(Math.max(0, options.everyMs - (Date.now() - started)));
    }
  })();
  return {
    ids,
    errors,
    async stop() {
      stopped = true;
      await loop;
      return ids;
    },
  };
}

// --- Delivery and the result row -----------------------------------------------------------------------------------

export type Consumer = Awaited<ReturnType<typeof startCountingConsumer>>;

/**
 * Waits until the outbox is empty and every expected id arrived, then until no more arrivals come for `settleMs`
 * (a duplicate may still be on its way when the last distinct id arrives).
 */
export async function waitForDelivery(
  pool: pg.Pool,
  consumer: Consumer,
  expectedIds: readonly string[],
  timeoutMs = 120_000,
  settleMs = 500,
): Promise<void> {
  await waitUntil(
    async () => expectedIds.every((id) => consumer.counts.has(id)) && (await outboxCount(pool)) === 0,
    () =>
      `delivery: ${expectedIds.filter((id) => consumer.counts.has(id)).length}/${expectedIds.length} arrived (outbox not empty or ids missing)`,
    timeoutMs,
    50,
  );
  let seen = -1;
  while (consumer.arrivals.length !== seen) {
    seen = consumer.arrivals.length;
    await sleep(settleMs);
  }
}

export interface ReliabilityRow {
  scenario: string;
  /** Messages that had to arrive. */
  messages: number;
  /** Of those, how many arrived at least once. */
  delivered: number;
  lost: number;
  /** Extra arrivals of the expected messages (arrivals - distinct). */
  duplicates: number;
  /**
   * Longest delay from write to first arrival, over the expected messages: `writtenAt` is taken just before the
   * write (before its COMMIT), so this is an upper bound of commit-to-delivery.
   */
  maxDelayMs: number;
  notes?: string;
}

export interface ScenarioResult extends ReliabilityRow {
  /** Expected ids that never arrived. */
  missing: string[];
  /** Ids that arrived without being expected. */
  unexpected: string[];
}

/** Counts what the consumer got against the ids that had to arrive. */
export function computeRow(
  scenario: string,
  expectedIds: readonly string[],
  consumer: Consumer,
  notes?: string,
): ScenarioResult {
  const maxDelayMs = delays(expectedIds, consumer).reduce((max, d) => Math.max(max, d), 0);
  return scenarioResult(scenario, expectedIds, consumer.counts, maxDelayMs, notes);
}

/** The row of what arrived (`counts` per message id) against the ids that had to arrive. */
export function scenarioResult(
  scenario: string,
  expectedIds: readonly string[],
  counts: ReadonlyMap<string, number>,
  maxDelayMs: number,
  notes?: string,
): ScenarioResult {
  const expected = new Set(expectedIds);
  const missing = expectedIds.filter((id) => !counts.has(id));
  const unexpected = [...counts.keys()].filter((id) => !expected.has(id));
  let duplicates = 0;
  for (const id of expected) duplicates += Math.max(0, (counts.get(id) ?? 0) - 1);
  return {
    scenario,
    messages: expected.size,
    delivered: expected.size - missing.length,
    lost: missing.length,
    duplicates,
    maxDelayMs: Math.round(maxDelayMs),
    ...(notes ? { notes } : {}),
    missing,
    unexpected,
  };
}

/** Arrival minus writtenAt of each expected id's first arrival (ms). */
export function delays(expectedIds: readonly string[], consumer: Consumer): number[] {
  const expected = new Set(expectedIds);
  const seen = new Set<string>();
  const out: number[] = [];
  for (const a of consumer.arrivals) {
    if (seen.has(a.messageId) || !expected.has(a.messageId)) continue;
    seen.add(a.messageId);
    const writtenAt = writtenAtOf(a.body);
    if (writtenAt !== undefined) out.push(a.at - writtenAt);
  }
  return out;
}

function writtenAtOf(body: string): number | undefined {
  try {
    const value = (JSON.parse(body) as { writtenAt?: unknown } | null)?.writtenAt;
    return typeof value === "number" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Where the rows go: the run's file (global setup of vitest.reliability.config.ts), else RELIABILITY_ROWS or tmp. */
function rowsFile(): string {
  let provided: string | undefined;
  try {
    provided = inject("reliabilityRows");
  } catch {
    provided = undefined;
  }
  return provided ?? process.env.RELIABILITY_ROWS ?? join(tmpdir(), "prisma-outbox-reliability-adhoc.jsonl");
}

/** Appends the row to the run's rows and prints it. */
export function recordRow(result: ScenarioResult): ReliabilityRow {
  const { missing: _missing, unexpected: _unexpected, ...row } = result;
  const line = { ...row, size: CHAOS ? "chaos" : "default", at: new Date().toISOString() };
  appendFileSync(rowsFile(), `${JSON.stringify(line)}\n`);
  console.log(`reliability row: ${JSON.stringify(row)}`);
  return row;
}

/** Any loss fails: every expected id arrived, and nothing else did. */
export function expectNoLoss(result: ScenarioResult): void {
  expect(result.missing.slice(0, 10), `${result.lost} of ${result.messages} messages lost`).toEqual([]);
  expect(result.lost).toBe(0);
  expect(result.delivered).toBe(result.messages);
  expect(result.unexpected.slice(0, 10), `${result.unexpected.length} unexpected message ids arrived`).toEqual([]);
}

// The scenarios take everything from this module: the shared helpers it builds on, too.
export { type Exit, killAll, killProc, type Proc, spawnTsx } from "../support/process-harness.js";
export { outboxCount } from "../support/tables.js";
export { sleep, waitUntil } from "../support/wait.js";

/**
 * What most scenario files start with: their own database (dropped after the file), a pool on it, the app's Prisma
 * client with the outbox (no in-process queue: the relays are worker processes), and process cleanup. The hooks run
 * in reverse: clients closed, then processes killed, then the database dropped.
 */
export async function useScenario() {
  const amqpUrl = inject("amqpUrl");
  const url = await useTestDatabase();
  const pool = newPool(url);
  const base = newPrismaClient(url);
  const prisma = base.$extends(outbox({ queue: false }));
  const { defer } = useProcessCleanup();
  afterAll(async () => {
    await base.$disconnect();
    await pool.end();
  });
  return { amqpUrl, url, pool, base, prisma, defer };
}
