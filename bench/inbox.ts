// npm run bench:inbox — the inbox against baselines measured in the same run.
//   (a) raw amqplib: consume MESSAGES prefilled messages with prefetch PREFETCH and ack them, (a1) with one
//       `multiple` ack per batch of deliveries that arrived together (the receiver's pattern; the ratio's baseline)
//       and (a2) one by one
//   (b) the inbox receiving the same MESSAGES prefilled messages: stored (one INSERT per batch) then acked. Its
//       processor is parked (concurrency 1, the one handler it starts waits on a gate until the end), so handlers
//       take no time from the receiver: the inbox has no receive-only mode, and this is the closest honest one.
//   (c) handled/s: HANDLED rows prefilled as pending in inbox_message, the inbox processing them with a handler that
//       does one Prisma insert, at CONCURRENCY
//   (d) the same work without the inbox: CONCURRENCY loops each running the same Prisma interactive transaction
//       (the insert + the UPDATE that marks the inbox row processed) over the same prefilled rows
//   (c) and (d) alternate ROUNDS times, so that machine noise hits both alike.
//   (c-batch) (c) with batch handlers of BATCH (50): bench/inbox-batch.ts, its ratio against (d)'s mean.
//   (e) end to end: an app writing one message per transaction with outbox() at RATE msg/s for LATENCY_SECONDS, an
//       in-process relay (startRelay) publishing to an exchange the inbox's queue is bound to, and the inbox with a
//       handler doing one Prisma insert, first in a consuming app's own process (bench/inbox-process.ts), then in the
//       writing app's process: outbox COMMIT to handler COMMIT (the "handled" event, emitted after it), and from the
//       write's start (its time is also in the payload) to handler COMMIT. Wall-clock times, comparable across
//       processes on one machine. After each, the path's floor at the same pace (bench/e2e-floor.ts) and the ratio
//       of the p50 to it, and the same path written by hand at the same rate and layout (bench/e2e-bare.ts), with the
//       ratios of ours to it.
// (a) and (b) use the same prefetch, the inbox's default (1000) unless PREFETCH is set.
// Env: MESSAGES (100000), PREFETCH (1000), HANDLED (5000), CONCURRENCY (4), ROUNDS (2), RATE (500),
// LATENCY_SECONDS (10), CASES (abcde: the letters of the cases to run), DUMP (print (e)'s latencies in order).
// (p) partitioned queues, 1/2/4 inbox processes against 1 on a plain queue: bench/inbox-partitioned.ts (CASES=p; not in
// the default CASES, about 2.5 minutes on its own at the default size).
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import amqp, { type ConsumeMessage } from "amqplib";
import pg from "pg";
import { type InboxEvent, inbox, OutboxQueue, outbox, startRelay } from "../src/index.js";
import { completeInboxMessageSql } from "../src/sql/inbox/complete.js";
import { inboxNames } from "../src/sql/names.js";
import { uniqueName } from "../test/support/consumer.js";
import { newPrismaClient } from "../test/support/prisma.js";
import { type CpuRow, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { runBare } from "./e2e-bare.js";
import { pathFloor } from "./e2e-floor.js";
import { e2eStages, type Stages } from "./e2e-stages.js";
import { runBatchCases } from "./inbox-batch.js";
import { runPartitionedCases } from "./inbox-partitioned.js";
import { benchDatabase, printTable, summarize } from "./support.js";

const MESSAGES = Number(process.env.MESSAGES ?? 100_000);
const PREFETCH = Number(process.env.PREFETCH ?? 1_000);
const HANDLED = Number(process.env.HANDLED ?? 5_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
// (e) runs at RATE when set, else at half the rate the same pipeline sustained just before (see endToEnd).
const RATE = process.env.RATE === undefined ? undefined : Number(process.env.RATE);
const LATENCY_SECONDS = Number(process.env.LATENCY_SECONDS ?? 10);
const CAPACITY = Number(process.env.CAPACITY ?? 3_000);
const BODY = JSON.stringify({ order: 1, note: "x".repeat(490) }).slice(0, 512);
const ROUTING_KEY = "bench.inbox";

const db = await benchDatabase();
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
// The database is dropped WITH (FORCE) at the end, which may terminate sockets pool.end() left closing.
pool.on("error", () => {});
const base = newPrismaClient(db.url);
const exchange = uniqueName("bench.inbox");
const queues: string[] = [];
const exchanges: string[] = [exchange];
const root = fileURLToPath(new URL("../", import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);
const quiet = { info() {}, warn() {}, error: (m: string) => log(`inbox error: ${m}`) };
const now = () => performance.timeOrigin + performance.now();
/** CPU time per message of every case (bench/cpu.ts), printed at the end. */
const cpuRows: CpuRow[] = [];
const databases = [databaseOf(db.url)];

const admin = await amqp.connect(db.amqpUrl);
const adminChannel = await admin.createConfirmChannel();
await adminChannel.assertExchange(exchange, "topic", { durable: true });

async function count(sql: string): Promise<number> {
  return Number((await pool.query(sql)).rows[0].count);
}

/** A fresh durable queue bound to the exchange, holding MESSAGES persistent messages published with confirms. */
async function prefilledQueue(): Promise<string> {
  const queue = uniqueName("bench.inbox.q");
  queues.push(queue);
  await adminChannel.assertQueue(queue, { durable: true });
  await adminChannel.bindQueue(queue, exchange, "#");
  const body = Buffer.from(BODY);
  for (let sent = 0; sent < MESSAGES; ) {
    const n = Math.min(1_000, MESSAGES - sent);
    for (let i = 0; i < n; i++) {
      const ok = adminChannel.publish(exchange, ROUTING_KEY, body, {
        persistent: true,
        messageId: randomUUID(),
        contentType: "application/json",
      });
      if (!ok) await once(adminChannel, "drain");
    }
    await adminChannel.waitForConfirms();
    sent += n;
  }
  const { messageCount } = await adminChannel.checkQueue(queue);
  if (messageCount !== MESSAGES) throw new Error(`prefill: ${messageCount} messages in ${queue}, not ${MESSAGES}`);
  return queue;
}

/** (a) Connect, consume with PREFETCH, ack everything; msg/s from before the connection to the last ack. */
async function rawConsume(multiple: boolean): Promise<Rate> {
  const queue = await prefilledQueue();
  const t0 = performance.now();
  const cpu0 = startMeter(`(a${multiple ? "1" : "2"}) raw amqplib, ${multiple ? "multiple ack" : "ack one by one"}`);
  const connection = await amqp.connect(db.amqpUrl);
  const channel = await connection.createChannel();
  await channel.prefetch(PREFETCH);
  let acked = 0;
  let batch = 0;
  let last: ConsumeMessage | undefined;
  let scheduled = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  await channel.consume(queue, (message) => {
    if (!message) return;
    if (!multiple) {
      channel.ack(message);
      if (++acked === MESSAGES) finish();
      return;
    }
    // The receiver's pattern without the database: what arrived together is acked once, on the next macrotask.
    last = message;
    batch++;
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      channel.ack(last!, true);
      acked += batch;
      batch = 0;
      if (acked === MESSAGES) finish();
    });
  });
  await done;
  const measured = rate(MESSAGES, t0, cpu0);
  await connection.close();
  return measured;
}

/** (b) The inbox receiving the prefilled queue, its processor parked; msg/s from start() to the last ack. */
async function inboxReceive(): Promise<Rate> {
  await pool.query('TRUNCATE inbox_message, "Effect" RESTART IDENTITY');
  await pool.query("VACUUM ANALYZE inbox_message");
  const queue = await prefilledQueue();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const box = inbox({
    prisma: base,
    queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: { parked: { pattern: "#", handle: () => gate } },
    prefetch: PREFETCH,
    concurrency: 1,
    handlerTimeoutMs: 3_600_000,
    sweepIntervalMs: 3_600_000,
    logger: quiet,
  });
  let received = 0;
  let stored = 0;
  const batches: number[] = [];
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  box.onEvent((e) => {
    if (e.type !== "received") return;
    batches.push(e.deliveries);
    received += e.deliveries;
    stored += e.stored;
    if (received >= MESSAGES) finish();
  });
  const t0 = performance.now();
  const cpu0 = startMeter("(b) inbox receive");
  await box.start({ databaseUrl: db.url, amqpUrl: db.amqpUrl });
  await done;
  const measured = rate(MESSAGES, t0, cpu0);
  release();
  await box.stop();
  if (process.env.DUMP) log(`receive batches: ${batches.length}, mean ${(MESSAGES / batches.length).toFixed(1)}`);
  const rows = await count("SELECT count(DISTINCT message_id) FROM inbox_message");
  if (stored !== MESSAGES || rows !== MESSAGES) {
    throw new Error(`inbox receive: ${stored} stored, ${rows} distinct rows, expected ${MESSAGES}`);
  }
  return measured;
}

/** Messages per second, and this process's CPU time (user + system) per message in ms. */
interface Rate {
  perSecond: number;
  cpuMs: number;
}
function rate(n: number, t0: number, cpu0: ReturnType<typeof startMeter>): Rate {
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0.own);
  cpuRows.push({ case: cpu0.label, cpu: cpu0.all.stop(), messages: n });
  return { perSecond: n / seconds, cpuMs: (cpu.user + cpu.system) / 1000 / n };
}
function startMeter(label: string) {
  return { label, own: process.cpuUsage(), all: startCpu({ "bench (app, inbox)": process.pid }, databases) };
}

/** HANDLED pending rows for the handler "effect", as the receiver stores them. */
async function prefillInbox(): Promise<void> {
  await pool.query('TRUNCATE inbox_message, "Effect" RESTART IDENTITY');
  await pool.query(
    `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload)
     SELECT gen_random_uuid()::text, 'effect', $1, $2, $3::json FROM generate_series(1, $4)`,
    [exchange, ROUTING_KEY, BODY, HANDLED],
  );
  await pool.query('VACUUM ANALYZE inbox_message, "Effect"');
}

async function checkHandled(label: string): Promise<void> {
  const processed = await count("SELECT count(*) FROM inbox_message WHERE status = 'processed'");
  const effects = await count('SELECT count(DISTINCT "messageId") FROM "Effect"');
  const total = await count('SELECT count(*) FROM "Effect"');
  if (processed !== HANDLED || effects !== HANDLED || total !== HANDLED) {
    throw new Error(`${label}: ${processed} processed, ${effects} distinct effects of ${total}, expected ${HANDLED}`);
  }
}

/** (c) The inbox processing HANDLED prefilled rows; handled/s from start() to the last "handled" event. */
async function inboxHandle(): Promise<Rate> {
  await prefillInbox();
  const queue = uniqueName("bench.inbox.idle");
  queues.push(queue);
  const box = inbox<{ [ROUTING_KEY]: unknown }, typeof base>({
    prisma: base,
    queue: { name: queue },
    handlers: {
      effect: {
        on: ROUTING_KEY,
        handle: (m, tx) =>
          tx.effect.create({ data: { messageId: m.messageId, handler: m.handler, payload: m.payload as object } }),
      },
    },
    concurrency: CONCURRENCY,
    logger: quiet,
  });
  let handled = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  box.onEvent((e) => {
    if (e.type === "handled" && ++handled === HANDLED) finish();
  });
  const t0 = performance.now();
  const cpu0 = startMeter("(c) inbox handling");
  await box.start({ databaseUrl: db.url, amqpUrl: db.amqpUrl });
  await done;
  const measured = rate(HANDLED, t0, cpu0);
  await box.stop();
  await checkHandled("inbox handle");
  return measured;
}

/** (d) CONCURRENCY loops running the handler's transaction (insert + mark processed) over the same rows. */
async function plainLoop(): Promise<Rate> {
  await prefillInbox();
  const { rows } = await pool.query<{ id: string; message_id: string; handler: string; payload: object }>(
    "SELECT id::text AS id, message_id, handler, payload FROM inbox_message ORDER BY id",
  );
  let next = 0;
  const t0 = performance.now();
  const cpu0 = startMeter("(d) plain loop");
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < rows.length) {
        const row = rows[next++]!;
        await base.$transaction(
          async (tx) => {
            await tx.effect.create({ data: { messageId: row.message_id, handler: row.handler, payload: row.payload } });
            const n = await tx.$executeRawUnsafe(completeInboxMessageSql(inboxNames()), row.id, 0);
            if (n !== 1) throw new Error(`row ${row.id} not marked`);
          },
          { timeout: 35_000 }, // what the processor passes with the default handlerTimeoutMs
        );
      }
    }),
  );
  const measured = rate(HANDLED, t0, cpu0);
  await checkHandled("plain loop");
  return measured;
}

/** The consuming app of (e) in its own process (bench/inbox-process.ts); handled times come over IPC. */
async function startInboxProcess(exchangeName: string, queueName: string, handledAt: Map<string, number>) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "bench/inbox-process.ts", db.url, db.amqpUrl, exchangeName, queueName],
    { cwd: root, stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`inbox process exited with ${code}`)));
    child.on("message", (m) => {
      if (m === "ready") return resolve();
      for (const [messageId, at] of m as Array<[string, number]>) handledAt.set(messageId, at);
    });
  });
  return {
    pid: child.pid,
    async stop() {
      child.removeAllListeners("exit");
      const exited = once(child, "exit");
      child.send("stop");
      await exited;
    },
  };
}

/**
 * (e) Outbox commit -> relay -> RabbitMQ -> inbox -> handler commit, at RATE msg/s; latencies in ms. The inbox runs
 * in this process (`separate` false) or in a consuming app's own process.
 */
async function endToEnd(separate: boolean): Promise<{
  fromCommit: number[];
  fromWrite: number[];
  rate: number;
  sustained: number | undefined;
  stages: Stages;
}> {
  await pool.query('TRUNCATE inbox_message, "Effect", outbox_message RESTART IDENTITY');
  const e2eExchange = uniqueName("bench.inbox.e2e");
  exchanges.push(e2eExchange);
  const queueName = uniqueName("bench.inbox.e2e.q");
  queues.push(queueName);
  const handoff = new OutboxQueue();
  const app = base.$extends(outbox({ exchange: e2eExchange, queue: handoff }));
  type Messages = { "bench.e2e": { i: number; writtenAt: number } };
  const writtenAt = new Map<string, number>();
  const committedAt = new Map<string, number>();
  const handledAt = new Map<string, number>();
  let stopInbox: () => Promise<void>;
  let inboxPid: number | undefined;
  if (separate) {
    const child = await startInboxProcess(e2eExchange, queueName, handledAt);
    stopInbox = child.stop;
    inboxPid = child.pid;
  } else {
    const box = inbox<Messages, typeof app>({
      prisma: app,
      queue: { name: queueName, bindings: [{ exchange: e2eExchange, routingKey: "#" }] },
      exchanges: [{ name: e2eExchange, type: "topic" }],
      handlers: {
        effect: {
          on: "bench.e2e",
          handle: (m, tx) =>
            tx.effect.create({ data: { messageId: m.messageId, handler: m.handler, payload: m.payload } }),
        },
      },
      logger: quiet,
    });
    box.onEvent((e: InboxEvent) => {
      if (e.type === "handled") handledAt.set(e.messageId, now());
    });
    await box.start({ databaseUrl: db.url, amqpUrl: db.amqpUrl });
    stopInbox = () => box.stop();
  }
  const relay = await startRelay({
    databaseUrl: db.url,
    amqpUrl: db.amqpUrl,
    queue: handoff,
    listen: false,
    exchanges: [{ name: e2eExchange, type: "topic" }],
  });
  let writes = 0;
  const write = async (i: number) => {
    writes++;
    const start = now();
    const [id] = await app.$enqueue({ routingKey: "bench.e2e", payload: { i, writtenAt: start } });
    committedAt.set(id!, now());
    writtenAt.set(id!, start);
  };
  const waitHandled = async (ids: Iterable<string>) => {
    const deadline = Date.now() + 60_000;
    for (const id of ids) {
      while (!handledAt.has(id)) {
        if (Date.now() > deadline) throw new Error(`end to end: ${handledAt.size} handled after 60 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const processes = { [`bench (app, relay${separate ? "" : ", inbox"})`]: process.pid, inbox: inboxPid };
  const where = separate ? "inbox in its own process" : "inbox in the app's process";
  // One second at RATE (200/s when not set) first, not measured: connections open and the JIT warms up.
  const warm = RATE ?? 200;
  for (let i = 0; i < warm; i++) await Promise.all([write(-1 - i), new Promise((r) => setTimeout(r, 1000 / warm))]);
  await waitHandled([...committedAt.keys()]);
  committedAt.clear();
  writtenAt.clear();
  // The rate this pipeline sustains (writes, relay, inbox, on this machine now): CAPACITY messages written back to
  // back by 8 writers, from the first write's start to the last handler COMMIT. The latency case then runs at half
  // of it: at the full rate the latency measured is a growing backlog, not the path.
  let rate = RATE;
  let sustained: number | undefined;
  if (rate === undefined) {
    const n = CAPACITY;
    let next = 0;
    const cpu = startCpu(processes, databases);
    const c0 = now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < n) await write(-1_000_000 - next++);
      }),
    );
    await waitHandled([...committedAt.keys()]);
    cpuRows.push({ case: `(e) ${where}, capacity`, cpu: cpu.stop(), messages: n });
    sustained = n / ((Math.max(...[...committedAt.keys()].map((id) => handledAt.get(id)!)) - c0) / 1000);
    rate = Math.max(1, Math.floor(sustained / 2));
    log(`    sustained ${Math.round(sustained)} msg/s end to end; latency at half: ${rate} msg/s`);
    committedAt.clear();
    writtenAt.clear();
  }
  const total = rate * LATENCY_SECONDS;
  const interval = 1000 / rate;
  const inflight: Promise<void>[] = [];
  const cpu = startCpu(processes, databases);
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const wait = t0 + i * interval - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(write(i));
  }
  await Promise.all(inflight);
  await waitHandled([...committedAt.keys()]);
  cpuRows.push({ case: `(e) ${where}, at ${rate} msg/s`, cpu: cpu.stop(), messages: total });
  await relay.stop();
  await stopInbox();
  const effects = await count('SELECT count(DISTINCT "messageId") FROM "Effect"');
  const rows = await count('SELECT count(*) FROM "Effect"');
  if (effects !== writes || rows !== effects) {
    throw new Error(`end to end: ${effects} distinct effects of ${rows}, expected ${writes}`);
  }
  const ids = [...committedAt.keys()];
  const stages = await e2eStages(pool, committedAt, handledAt);
  return {
    stages,
    fromCommit: ids.map((id) => handledAt.get(id)! - committedAt.get(id)!),
    fromWrite: ids.map((id) => handledAt.get(id)! - writtenAt.get(id)!),
    rate,
    sustained,
  };
}

log(
  `bench:inbox: ${MESSAGES} messages of ${BODY.length} bytes, prefetch ${PREFETCH}; ${HANDLED} handled x ${ROUNDS} ` +
    `rounds at concurrency ${CONCURRENCY}; end to end at ${RATE ?? "half the sustained "}/s for ${LATENCY_SECONDS}s`,
);
const CASES = process.env.CASES ?? "abcde";
const run = (c: string) => CASES.includes(c);
const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
const lines: string[] = [];

if (run("a") || run("b")) {
  log("(a1) raw amqplib, multiple ack per batch ...");
  const a1 = await rawConsume(true);
  log("(a2) raw amqplib, ack one by one ...");
  const a2 = await rawConsume(false);
  log("(b) inbox receive ...");
  const b = await inboxReceive();
  console.log(`\nReceive: ${MESSAGES} prefilled ${BODY.length}-byte messages, prefetch ${PREFETCH}`);
  printTable(
    [
      ["(a1) raw amqplib, multiple ack per batch", a1],
      ["(a2) raw amqplib, ack one by one", a2],
      ["(b) inbox receive (store + ack)", b],
    ].map(([name, r]) => {
      const x = r as Rate;
      return {
        case: name as string,
        "msg/s": Math.round(x.perSecond),
        "ratio to (a1)": x.perSecond / a1.perSecond,
        "CPU ms/msg (this process)": x.cpuMs,
      };
    }),
  );
  const r = b.perSecond / a1.perSecond;
  lines.push(`ratio (b)/(a1) receive: ${r.toFixed(3)} (goal >= 0.7: ${verdict(r >= 0.7)})`);
}

if (run("c") || run("d")) {
  const handle: Rate[] = [];
  const plain: Rate[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    log(`(d) plain transaction loop, round ${round + 1} ...`);
    plain.push(await plainLoop());
    log(`(c) inbox handling, round ${round + 1} ...`);
    handle.push(await inboxHandle());
  }
  const mean = (xs: number[]) => xs.reduce((sum, x) => sum + x, 0) / xs.length;
  const d = mean(plain.map((x) => x.perSecond));
  const c = mean(handle.map((x) => x.perSecond));
  console.log(`\nHandling: ${HANDLED} rows x ${ROUNDS} rounds at concurrency ${CONCURRENCY} (one Prisma insert each)`);
  printTable(
    [
      ["(d) plain loop, same transaction", plain, d],
      ["(c) inbox handling", handle, c],
    ].map(([name, rounds, m]) => {
      const xs = rounds as Rate[];
      return {
        case: name as string,
        "per round /s": xs.map((x) => Math.round(x.perSecond)).join(" "),
        "mean /s": Math.round(m as number),
        "ratio to (d)": (m as number) / d,
        "CPU ms/msg (this process)": mean(xs.map((x) => x.cpuMs)),
      };
    }),
  );
  lines.push(`ratio (c)/(d) handling: ${(c / d).toFixed(3)} (goal >= 0.8: ${verdict(c / d >= 0.8)})`);
  if (run("c")) {
    const context = { base, db, routingKey: ROUTING_KEY, handled: HANDLED, concurrency: CONCURRENCY, rounds: ROUNDS };
    lines.push(...(await runBatchCases({ ...context, queues, prefillInbox, checkHandled, quiet, log }, d)));
  }
}

if (run("e")) {
  const results: Array<[string, ReturnType<typeof summarize>]> = [];
  for (const separate of [true, false]) {
    const where = separate ? "inbox in its own process" : "inbox in the app's process";
    log(`(e) end to end, ${where} ...`);
    const e2e = await endToEnd(separate);
    const fromCommit = summarize(e2e.fromCommit);
    const at = `${e2e.rate}/s`;
    results.push([`(e) ${where}, ${at}: outbox commit -> handler commit`, fromCommit]);
    results.push([`(e) ${where}, ${at}: write start -> handler commit`, summarize(e2e.fromWrite)]);
    for (const [stage, x] of e2e.stages) results.push([`(e) ${where}, ${at}, ${stage}`, x]);
    if (e2e.sustained !== undefined) {
      lines.push(`(e) ${where}: sustained ${Math.round(e2e.sustained)} msg/s end to end; latency run at ${at} (half)`);
    }
    lines.push(
      `(e) ${where} at ${at}: latency p50 ${fromCommit.p50.toFixed(2)} ms (goal < 5: ${verdict(fromCommit.p50 < 5)}), ` +
        `p99 ${fromCommit.p99.toFixed(2)} ms (goal < 20: ${verdict(fromCommit.p99 < 20)}), max ${fromCommit.max.toFixed(1)} ms`,
    );
    // The parts' own latency at the same pace, the machine otherwise idle (bench/e2e-floor.ts).
    const floor = await pathFloor(pool, base, db.amqpUrl, e2e.rate);
    const parts = floor.parts.map(([part, ms]) => `${part} ${ms.toFixed(2)}`).join(" + ");
    lines.push(`(e) ${where}: path floor at ${at} (p50s, each part alone): ${parts} = ${floor.total.toFixed(2)} ms`);
    lines.push(`(e) ${where}: ratio latency p50 / path floor: ${(fromCommit.p50 / floor.total).toFixed(3)}`);
    // The same path written by hand, at the same rate and in the same layout (bench/e2e-bare.ts).
    for (const shape of ["store then handle", "handled in the storing transaction"] as const) {
      log(`(e) bare pipeline, ${shape}, ${where} ...`);
      const bare = await runBare({
        ...{ prisma: base, databaseUrl: db.url, amqpUrl: db.amqpUrl, shape, rate: e2e.rate, seconds: LATENCY_SECONDS },
        ...{ separate, childScript: "bench/e2e-bare-process.ts", cwd: root, label: where },
      });
      cpuRows.push(bare.cpu);
      const x = summarize(bare.fromCommit);
      results.push([`(e) ${where}, ${at}, bare: ${shape}`, x]);
      lines.push(
        `(e) ${where}: bare pipeline (${shape}) at ${at}: p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms; ` +
          `ratio ours / bare: p50 ${(fromCommit.p50 / x.p50).toFixed(3)}, p99 ${(fromCommit.p99 / x.p99).toFixed(3)}`,
      );
    }
    if (process.env.DUMP) console.error(JSON.stringify(e2e.fromCommit.map((x) => Math.round(x))));
  }
  console.log(`\nEnd to end for ${LATENCY_SECONDS} s (ms), relay in the app's process`);
  printTable(results.map(([name, x]) => ({ case: name, n: x.n, p50: x.p50, p95: x.p95, p99: x.p99, max: x.max })));
}
if (run("p")) {
  const context = { db, pool, channel: adminChannel, root, databases, cpuRows, queues, exchanges, log };
  lines.push(...(await runPartitionedCases(context)));
}
console.log(`\n${lines.join("\n")}`);
printCpuTable("bench:inbox", cpuRows);

for (const queue of queues) await adminChannel.deleteQueue(queue).catch(() => {});
for (const name of exchanges) await adminChannel.deleteExchange(name).catch(() => {});
await admin.close();
await base.$disconnect();
await pool.end();
await db.cleanup();
