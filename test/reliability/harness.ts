// Shared by the reliability suite (test/reliability/*.test.ts): worker and app processes with captured logs, kills,
// outbox and backend queries, a PostgreSQL proxy that holds a relay's COMMIT, and the result row of each scenario.
//
// Each scenario is a real run against the real PostgreSQL and RabbitMQ. Consumers count arrivals by message id, so
// "lost" and "duplicate" are exact. Two sizes: the default (CI) and CHAOS=1 (more messages, more faults).
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type pg from "pg";
import { afterAll, afterEach, beforeEach, expect, inject } from "vitest";
import type { OutboxMessageInput } from "../../src/index.js";
import { outbox } from "../../src/index.js";
import type { startCountingConsumer } from "../support/consumer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

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

export const root = fileURLToPath(new URL("../../", import.meta.url));

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A random integer in [min, max]. */
export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** Polls `condition` until it holds; throws `what` (with its last value) after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string | (() => string),
  timeoutMs = 60_000,
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await sleep(intervalMs);
  }
}

// --- Processes -----------------------------------------------------------------------------------------------------

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when it exited. */
  at: number;
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Lines written to stdout and stderr, in arrival order. */
  readonly lines: string[];
  readonly stdout: string[];
  /** The whole captured output, one line each. */
  log(): string;
  /** True until the process exited and its output was read to the end. */
  readonly running: boolean;
  /**
   * Resolves once the process exited and its stdout and stderr closed: every line it wrote is in `lines` by then.
   * `at` is when it exited.
   */
  readonly exited: Promise<Exit>;
  /**
   * Resolves with the `occurrence`-th line (past or future; 1 by default) matching `pattern`; rejects when the process
   * exits first, or after `timeoutMs`.
   */
  waitForLine(pattern: RegExp, timeoutMs?: number, occurrence?: number): Promise<string>;
  /** How many lines so far match `pattern`. */
  countLines(pattern: RegExp): number;
  /** Writes `line` and a newline to its stdin (spawned with `{ stdin: true }`). */
  writeLine(line: string): void;
  kill(signal: NodeJS.Signals): void;
}

const live = new Set<Proc>();
/** Every process started by the current test, for its logs when it fails. */
let startedInTest: Proc[] = [];
/**
 * False from the moment a test's cleanup starts until the next test starts (and for good after the file's last
 * test): a test body that timed out and still runs must not start processes nobody will kill.
 */
let spawning = true;

/** Preloaded into every child: it dies with this process (see the fixture). */
const dieWithParent = pathToFileURL(join(root, "test/reliability/fixtures/die-with-parent.ts")).href;

export interface SpawnOptions {
  /** A pipe to its stdin, for `writeLine` (else stdin is /dev/null). */
  stdin?: boolean;
}

/**
 * Runs a TypeScript file under tsx in a process of its own, capturing its output. The process dies with the test
 * process (fixtures/die-with-parent.ts), however that ends.
 */
export function spawnTsx(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Proc {
  if (!spawning) {
    throw new Error(`not starting ${name}: the test's cleanup has started (did the test time out?)`);
  }
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  // The suite decides every setting of the processes it starts.
  for (const key of Object.keys(childEnv)) if (key.startsWith("OUTBOX_")) delete childEnv[key];
  Object.assign(childEnv, env);
  const child = spawn(process.execPath, ["--import", "tsx", "--import", dieWithParent, script, ...args], {
    cwd: root,
    env: childEnv,
    // The IPC channel is never used for messages: its end is how the child learns that this process is gone.
    stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe", "ipc"],
  });
  const lines: string[] = [];
  const stdout: string[] = [];
  const lineWaiters = new Set<() => void>();
  let exitedAt: number | undefined;
  let exit: Exit | undefined;
  child.once("exit", () => {
    exitedAt = Date.now();
  });
  // A spawn that fails (it should not: the executable is this Node) is reported in the log, then as its close.
  child.on("error", (error) => lines.push(`[harness] ${name}: ${error.message}`));
  child.stdin?.on("error", () => {}); // writing to a child that just died
  // 'close', not 'exit': the output may still hold lines (the last "relay stopped") when the process has exited.
  const exited = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => {
      exit = { code, signal, at: exitedAt ?? Date.now() };
      live.delete(proc);
      for (const w of lineWaiters) w();
      resolve(exit);
    });
  });
  const capture = (stream: NodeJS.ReadableStream, into: string[] | undefined) => {
    let partial = "";
    const push = (line: string) => {
      lines.push(line);
      into?.push(line);
    };
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) push(line);
      for (const w of lineWaiters) w();
    });
    stream.on("end", () => {
      if (partial !== "") push(partial);
      partial = "";
    });
  };
  capture(child.stdout!, stdout);
  capture(child.stderr!, undefined);
  const proc: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    lines,
    stdout,
    log: () => lines.map((l) => `[${name} ${child.pid}] ${l}`).join("\n"),
    get running() {
      return exit === undefined;
    },
    exited,
    countLines: (pattern) => lines.filter((l) => pattern.test(l)).length,
    waitForLine(pattern, timeoutMs = 30_000, occurrence = 1) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.filter((l) => pattern.test(l))[occurrence - 1];
          if (line !== undefined) done(() => resolve(line));
          else if (exit) {
            done(() =>
              reject(
                new Error(`${name} exited (${exit?.code ?? exit?.signal}) before printing ${pattern}:\n${proc.log()}`),
              ),
            );
          }
        };
        const timer = setTimeout(
          () =>
            done(() => reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${proc.log()}`))),
          timeoutMs,
        );
        const done = (settle: () => void) => {
          clearTimeout(timer);
          lineWaiters.delete(check);
          settle();
        };
        lineWaiters.add(check);
        check();
      });
    },
    writeLine(line) {
      if (!child.stdin) throw new Error(`${name} was not spawned with { stdin: true }`);
      child.stdin.write(`${line}\n`);
    },
    kill(signal) {
      if (exitedAt === undefined) child.kill(signal);
    },
  };
  live.add(proc);
  startedInTest.push(proc);
  return proc;
}

export interface WorkerOptions {
  databaseUrl: string;
  amqpUrl: string;
  /** OUTBOX_* settings (and anything else) for this worker. */
  env?: Record<string, string>;
  args?: string[];
  name?: string;
}

let workerSeq = 0;

/** Starts the bundled worker CLI (`src/cli/main.ts worker`) and resolves once it printed "relay started". */
export async function startWorker(options: WorkerOptions): Promise<Proc> {
  const worker = spawnWorker(options);
  await worker.waitForLine(/relay started/, 30_000);
  return worker;
}

/** Starts the bundled worker CLI without waiting for it. */
export function spawnWorker({ databaseUrl, amqpUrl, env = {}, args = [], name }: WorkerOptions): Proc {
  return spawnTsx(name ?? `worker-${++workerSeq}`, "src/cli/main.ts", ["worker", ...args], {
    DATABASE_URL: databaseUrl,
    AMQP_URL: amqpUrl,
    ...env,
  });
}

/** Sends `signal` and waits for the exit. */
export async function killProc(proc: Proc, signal: NodeJS.Signals = "SIGKILL"): Promise<Exit> {
  proc.kill(signal);
  return proc.exited;
}

/** SIGKILLs every process the suite started that still runs, and waits for them. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => killProc(p, "SIGKILL")));
}

// Last resort when this process exits normally with children still running (a crash or a signal does not run this:
// there, each child's die-with-parent preload ends it).
process.once("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** The "relay stopped" line's stats of a worker stopped gracefully, e.g. { published: 120, deadLettered: 0, ... }. */
export function stoppedStats(proc: Proc): Record<string, number> | undefined {
  const line = proc.lines.find((l) => l.includes("relay stopped"));
  if (!line) return undefined;
  return Object.fromEntries([...line.matchAll(/ (\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

/**
 * Registers the per-file hooks: after each test, every process still running is killed (and, when the test failed,
 * the tail of each one's output printed); `cleanups` run after each test too. From the start of that cleanup until the
 * next test starts, spawnTsx refuses to start anything.
 */
export function useProcessCleanup(): { defer(cleanup: () => Promise<unknown> | unknown): void } {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  beforeEach(() => {
    spawning = true;
  });
  afterEach(async (context) => {
    spawning = false;
    await killAll();
    if (context.task.result?.state === "fail") {
      for (const p of startedInTest) {
        const tail = p.lines.slice(-40).map((l) => `[${p.name} ${p.pid}] ${l}`);
        if (tail.length > 0) console.error(`--- last lines of ${p.name} (pid ${p.pid})\n${tail.join("\n")}`);
      }
    }
    startedInTest = [];
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    spawning = false;
    await killAll();
  });
  return { defer: (cleanup) => cleanups.push(cleanup) };
}

// --- Database ------------------------------------------------------------------------------------------------------

export async function outboxCount(pool: pg.Pool): Promise<number> {
  return Number((await pool.query("SELECT count(*) FROM outbox_message")).rows[0].count);
}

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
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
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
  const expected = new Set(expectedIds);
  const missing = expectedIds.filter((id) => !consumer.counts.has(id));
  const unexpected = [...consumer.counts.keys()].filter((id) => !expected.has(id));
  let duplicates = 0;
  for (const id of expected) duplicates += Math.max(0, (consumer.counts.get(id) ?? 0) - 1);
  let maxDelayMs = 0;
  const firstSeen = new Set<string>();
  for (const a of consumer.arrivals) {
    if (firstSeen.has(a.messageId) || !expected.has(a.messageId)) continue;
    firstSeen.add(a.messageId);
    const writtenAt = writtenAtOf(a.body);
    if (writtenAt !== undefined) maxDelayMs = Math.max(maxDelayMs, a.at - writtenAt);
  }
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

// --- A PostgreSQL proxy that holds a relay's COMMIT -----------------------------------------------------------------

export interface HeldCommit {
  /** message_id of every row the held transaction claimed (its DELETE ... RETURNING). */
  messageIds: string[];
  at: number;
}

export interface CommitGate {
  /** The same URL with host and port replaced by the gate's. */
  url(original: string): string;
  /**
   * From now on, the first COMMIT sent on a connection whose transaction claimed outbox rows is not forwarded, nor
   * anything after it on that connection: the transaction stays open (its rows locked and not deleted) until the
   * client goes away. Resolves with the claimed message ids once it holds one.
   */
  arm(): Promise<HeldCommit>;
  /** Connections open through the gate. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of PostgreSQL that reads the wire protocol (v3, no SSL) just enough to see each transaction's
 * BEGIN / COMMIT (simple queries, as node-postgres sends statements without parameters; the claim may ride with the
 * BEGIN) and the rows it got back with a `message_id` column (whichever protocol the claim used). The relay sends COMMIT only after the broker confirmed every message of the batch, so a held
 * COMMIT followed by SIGKILL is exactly "killed after the broker's confirm and before COMMIT", with no timing luck.
 */
export async function startCommitGate(targetHost: string, targetPort: number): Promise<CommitGate> {
  let armed: ((held: HeldCommit) => void) | undefined;
  const sockets = new Set<Socket>();
  let open = 0;

  const server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    open++;
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      open--;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);

    let fromClient: Buffer = Buffer.alloc(0);
    let startup = true;
    let holding = false;
    let fromServer: Buffer = Buffer.alloc(0);
    let messageIdColumn = -1;
    let claimed: string[] = [];

    upstream.on("data", (chunk: Buffer) => {
      client.write(chunk);
      fromServer = fromServer.length === 0 ? chunk : Buffer.concat([fromServer, chunk]);
      // Backend messages: type byte, int32 length (itself included), body.
      while (fromServer.length >= 5) {
        const total = 1 + fromServer.readInt32BE(1);
        if (fromServer.length < total) break;
        const type = String.fromCharCode(fromServer[0]!);
        const body = fromServer.subarray(5, total);
        if (type === "T") messageIdColumn = columnIndex(body, "message_id");
        else if (type === "D" && messageIdColumn >= 0) {
          const id = dataRowColumn(body, messageIdColumn);
          if (id !== undefined) claimed.push(id);
        }
        fromServer = fromServer.subarray(total);
      }
    });

    client.on("data", (chunk: Buffer) => {
      if (holding) return; // everything after the held COMMIT is dropped with it
      fromClient = fromClient.length === 0 ? chunk : Buffer.concat([fromClient, chunk]);
      for (;;) {
        if (startup) {
          // The startup message has no type byte: int32 length, then the body.
          if (fromClient.length < 4) return;
          const total = fromClient.readInt32BE(0);
          if (fromClient.length < total) return;
          upstream.write(fromClient.subarray(0, total));
          fromClient = fromClient.subarray(total);
          startup = false;
          continue;
        }
        if (fromClient.length < 5) return;
        const total = 1 + fromClient.readInt32BE(1);
        if (fromClient.length < total) return;
        const message = fromClient.subarray(0, total);
        fromClient = fromClient.subarray(total);
        if (message[0] === 0x51 /* Q */) {
          const sql = message
            .subarray(5, total - 1)
            .toString("utf8")
            .trim()
            .toUpperCase();
          const isCommit = /^(COMMIT|END)\s*;?$/.test(sql);
          if (isCommit && armed && claimed.length > 0) {
            holding = true;
            const resolve = armed;
            armed = undefined;
            resolve({ messageIds: claimed, at: Date.now() });
            return;
          }
          // A new transaction (BEGIN alone or with the claim in one round trip), or the end of one.
          if (isCommit || /^(BEGIN|START TRANSACTION|ROLLBACK)\b/.test(sql)) claimed = [];
        }
        upstream.write(message);
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("The commit gate did not get a TCP port");
  const port = address.port;
  return {
    url(original) {
      const u = new URL(original);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    arm() {
      return new Promise((resolve) => {
        armed = resolve;
      });
    },
    get connections() {
      return open;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Index of the column named `name` in a RowDescription body, or -1. */
function columnIndex(body: Buffer, name: string): number {
  const fields = body.readInt16BE(0);
  let offset = 2;
  for (let i = 0; i < fields; i++) {
    const end = body.indexOf(0, offset);
    if (body.toString("utf8", offset, end) === name) return i;
    offset = end + 1 + 18; // table oid, column attnum, type oid, type size, type modifier, format code
  }
  return -1;
}

/** The text of column `index` of a DataRow body (text format), or undefined for NULL. */
function dataRowColumn(body: Buffer, index: number): string | undefined {
  const columns = body.readInt16BE(0);
  let offset = 2;
  for (let i = 0; i < columns && i <= index; i++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    if (i === index) return length < 0 ? undefined : body.toString("utf8", offset, offset + length);
    if (length > 0) offset += length;
  }
  return undefined;
}

export { newPool };

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
