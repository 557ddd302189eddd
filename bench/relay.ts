// npm run bench:relay — relay throughput and fast-path latency, against a baseline measured in the same run.
//   (a) raw amqplib: publish MESSAGES messages (512-byte JSON) on a confirm channel in batches of 1,000
//   (b) the relay draining MESSAGES prefilled rows, with 1 relay and with 2 relays
//   (b') the same drain with ordering keys: every row keyed, over 1,000 keys and over 10 keys, as ratios to the
//       unkeyed drain of the same run (one message of a key in flight at a time, and a claim takes the first rows
//       of at most batchSize / concurrency keys, so 1,000 keys go in two batches of different keys in flight at
//       once; the 10-key case is bounded by 10 messages per batch; it drains KEYED_10_MESSAGES rows, 20,000 by
//       default)
//   (c) commit-to-consumer latency at a steady RATE messages/s for LATENCY_SECONDS, with the relay in the app's
//       process (in-process queue) and in a separate worker process (LISTEN; woken by the writer's after-commit
//       NOTIFY, the default, and by a NOTIFY in every transaction, as first shipped)
//   (d) the cost of the doctor's periodic checks (doctorIntervalMs) on a busy relay: the (b) x1 drain with the checks
//       off and with them every DOCTOR_INTERVAL_MS (1,000 by default: 60 times the default interval, so that a
//       drain of a few seconds runs several), alternated DOCTOR_ROUNDS times (3), the ratio of the medians printed.
//       BENCH_ONLY=doctor runs this case alone.
// Every case publishes to the same exchange, bound to one queue that a consumer in this process drains, so that the
// broker does the same work in each. Env: MESSAGES (100000), RATE (500), LATENCY_SECONDS (10).
// BENCH_OTEL=1: an OpenTelemetry SDK registered in this process and in the worker process (bench/otel.ts), prefilled
// rows carrying a traceparent (so every publish span gets its links), and every write in an active span. Compare its
// ratios with a run without it for the cost of tracing and metrics. To split that cost: BENCH_HEADERS=1 (rows with a
// traceparent, no SDK) and BENCH_OTEL=context (only the SDK's context manager), see bench/otel.ts.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import pg from "pg";
import { createRelay, OutboxQueue, outbox } from "../src/index.js";
import { uniqueName } from "../test/support/consumer.js";
import { newPrismaClient } from "../test/support/prisma.js";
import { type CpuRow, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { inSpan, OTEL, OTEL_LINE, TRACE_HEADERS } from "./otel.js";
import { benchDatabase, printTable, summarize } from "./support.js";

const MESSAGES = Number(process.env.MESSAGES ?? 100_000);
const RATE = Number(process.env.RATE ?? 500);
const LATENCY_SECONDS = Number(process.env.LATENCY_SECONDS ?? 10);
const BODY = JSON.stringify({ order: 1, note: "x".repeat(490) }).slice(0, 512);

const db = await benchDatabase();
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
const exchange = uniqueName("bench.relay");
const log = (s: string) => process.stderr.write(`${s}\n`);
const root = fileURLToPath(new URL("../", import.meta.url));
/** CPU time per message of every case, printed at the end (bench/cpu.ts). */
const cpuRows: CpuRow[] = [];
const databases = [databaseOf(db.url)];

/** Counts arrivals by message id, from the consumer process. */
async function startConsumerProcess(amqpUrl: string, exchangeName: string) {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/consumer-process.ts", amqpUrl, exchangeName], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const counts = new Map<string, number>();
  const arrivals: Array<{ messageId: string; at: number }> = [];
  const waiters = new Set<() => void>();
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`consumer exited with ${code}`)));
    child.on("message", (m) => {
      if (m === "ready") return resolve();
      for (const [messageId, at] of m as Array<[string, number]>) {
        counts.set(messageId, (counts.get(messageId) ?? 0) + 1);
        arrivals.push({ messageId, at });
      }
      for (const w of waiters) w();
    });
  });
  return {
    pid: child.pid,
    counts,
    arrivals,
    get duplicates() {
      let d = 0;
      for (const c of counts.values()) d += c - 1;
      return d;
    },
    waitForDistinct(n: number, timeoutMs: number): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (counts.size < n) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`waited ${timeoutMs} ms for ${n} messages, got ${counts.size}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      child.send("stop");
      await once(child, "exit");
    },
  };
}

const consumer = await startConsumerProcess(db.amqpUrl, exchange);

/** Waits until the consumer holds `n` distinct ids; returns the time it happened. */
async function arrived(n: number): Promise<number> {
  await consumer.waitForDistinct(n, 600_000);
  return performance.now();
}
function resetConsumer() {
  consumer.counts.clear();
  consumer.arrivals.length = 0;
}

async function rawAmqplib(): Promise<number> {
  resetConsumer();
  const connection = await amqp.connect(db.amqpUrl);
  const channel = await connection.createConfirmChannel();
  const body = Buffer.from(BODY);
  const cpu = startCpu({ "bench (publisher)": process.pid, consumer: consumer.pid }, databases);
  const t0 = performance.now();
  for (let sent = 0; sent < MESSAGES; ) {
    const n = Math.min(1_000, MESSAGES - sent);
    for (let i = 0; i < n; i++) {
      const ok = channel.publish(exchange, "raw", body, {
        persistent: true,
        mandatory: true,
        messageId: `${sent + i}`,
        contentType: "application/json",
        timestamp: Math.floor(Date.now() / 1000),
      });
      if (!ok) await once(channel, "drain");
    }
    await channel.waitForConfirms();
    sent += n;
  }
  // Same end as the relay's: every message confirmed and consumed.
  const t1 = await arrived(MESSAGES);
  cpuRows.push({ case: "(a) raw amqplib", cpu: cpu.stop(), messages: MESSAGES });
  await connection.close();
  return MESSAGES / ((t1 - t0) / 1000);
}

/** `keys`: rows keyed round-robin over that many ordering keys (0: no keys). */
async function prefill(messages: number, keys: number): Promise<void> {
  await pool.query("TRUNCATE outbox_message");
  // With BENCH_OTEL=1 each row carries the trace context of the request that wrote it, as a traced app's rows do.
  await pool.query(
    `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, headers, ordering_key)
     SELECT gen_random_uuid(), $1, 'bench', $2::json,
       CASE WHEN $5 THEN jsonb_build_object('traceparent',
         '00-' || md5(random()::text) || '-' || left(md5(random()::text), 16) || '-01') END,
       CASE WHEN $4::int > 0 THEN 'key-' || (g % $4::int) END
     FROM generate_series(1, $3) g`,
    [exchange, BODY, messages, keys, TRACE_HEADERS],
  );
  await pool.query("VACUUM ANALYZE outbox_message");
}

async function relayDrain(
  relays: number,
  keys = 0,
  messages = MESSAGES,
  doctorIntervalMs?: number,
  label = `(b) relay x${relays}${keys > 0 ? `, ${keys} keys` : ""}`,
): Promise<number> {
  await prefill(messages, keys);
  resetConsumer();
  const rs = Array.from({ length: relays }, () =>
    createRelay({
      databaseUrl: db.url,
      amqpUrl: db.amqpUrl,
      queue: false,
      listen: false,
      batchSize: 1_000,
      ...(doctorIntervalMs === undefined ? {} : { doctorIntervalMs }),
    }),
  );
  const cpu = startCpu({ "bench (relay)": process.pid, consumer: consumer.pid }, databases);
  const t0 = performance.now();
  await Promise.all(rs.map((r) => r.start()));
  await consumer.waitForDistinct(messages, 600_000);
  // Done means committed: the outbox is empty.
  while (Number((await pool.query("SELECT count(*) FROM outbox_message")).rows[0].count) > 0) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const t1 = performance.now();
  cpuRows.push({ case: label, cpu: cpu.stop(), messages });
  await Promise.all(rs.map((r) => r.stop()));
  if (consumer.duplicates > 0) log(`warning: ${consumer.duplicates} duplicates`);
  return messages / ((t1 - t0) / 1000);
}

/** Writes RATE messages/s, one per transaction, for LATENCY_SECONDS; returns commit-to-consumer latencies (ms). */
async function steadyLatency(
  label: string,
  processes: Record<string, number | undefined>,
  write: (i: number) => Promise<string>,
): Promise<number[]> {
  // One second at the same rate first, not measured: connections open and the JIT warms up.
  for (let i = 0; i < RATE; i++) {
    await Promise.all([write(-1 - i), new Promise((r) => setTimeout(r, 1000 / RATE))]);
  }
  await consumer.waitForDistinct(RATE, 60_000);
  resetConsumer();
  const committedAt = new Map<string, number>();
  const total = RATE * LATENCY_SECONDS;
  const interval = 1000 / RATE;
  const cpu = startCpu({ ...processes, consumer: consumer.pid }, databases);
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      write(i).then((id) => {
        committedAt.set(id, performance.timeOrigin + performance.now());
      }),
    );
  }
  await Promise.all(inflight);
  if (process.env.DUMP) console.error("event loop utilization", performance.eventLoopUtilization(elu0).utilization);
  const deadline = Date.now() + 60_000;
  while ([...committedAt.keys()].some((id) => !consumer.counts.has(id))) {
    if (Date.now() > deadline) throw new Error("latency run: messages missing after 60 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  cpuRows.push({ case: label, cpu: cpu.stop(), messages: total });
  const lat = consumer.arrivals
    .filter((a) => committedAt.has(a.messageId))
    .map((a) => a.at - committedAt.get(a.messageId)!);
  if (process.env.DUMP) console.error(JSON.stringify(lat.map((x) => Math.round(x))));
  return lat;
}

async function latencyInApp(): Promise<number[]> {
  await pool.query("TRUNCATE outbox_message");
  const base = newPrismaClient(db.url);
  const queue = new OutboxQueue();
  const prisma = base.$extends(outbox({ exchange, queue }));
  const relay = createRelay({ databaseUrl: db.url, amqpUrl: db.amqpUrl, queue, listen: false });
  await relay.start();
  const samples = await steadyLatency("(c) relay in the app", { "bench (app + relay)": process.pid }, async (i) => {
    const [id] = await inSpan(() => prisma.$enqueue({ routingKey: "latency", payload: { i } }));
    return id!;
  });
  await relay.stop();
  await base.$disconnect();
  return samples;
}

async function latencyWorker(notify: true | "in-transaction"): Promise<number[]> {
  await pool.query("TRUNCATE outbox_message");
  const preload = OTEL || process.env.BENCH_OTEL === "context" ? ["--import", "./bench/otel.ts"] : [];
  const worker: ChildProcess = spawn(process.execPath, ["--import", "tsx", ...preload, "src/cli/main.ts", "worker"], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, AMQP_URL: db.amqpUrl },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    worker.stdout!.on("data", (d) => {
      output += d;
      if (output.includes("relay started")) resolve();
    });
    worker.once("exit", (code) => reject(new Error(`worker exited with ${code}: ${output}`)));
  });
  const base = newPrismaClient(db.url);
  const prisma = base.$extends(outbox({ exchange, queue: false, notify }));
  const label = `(c) relay in a worker, ${notify === true ? "after-commit wake-up" : "NOTIFY in every tx"}`;
  const samples = await steadyLatency(label, { "bench (app)": process.pid, worker: worker.pid }, async (i) => {
    const [id] = await inSpan(() => prisma.$enqueue({ routingKey: "latency", payload: { i } }));
    return id!;
  });
  worker.kill("SIGTERM");
  await once(worker, "exit");
  await base.$disconnect();
  return samples;
}

/** (d): the x1 drain without and with the periodic checks, alternated; msg/s medians and their ratio. */
async function doctorCost(): Promise<{
  off: number;
  on: number;
  bestOff: number;
  bestOn: number;
  intervalMs: number;
  rounds: number;
}> {
  const intervalMs = Number(process.env.DOCTOR_INTERVAL_MS ?? 1_000);
  const rounds = Number(process.env.DOCTOR_ROUNDS ?? 3);
  const off: number[] = [];
  const on: number[] = [];
  for (let i = 0; i < rounds; i++) {
    off.push(await relayDrain(1, 0, MESSAGES, 0, "(d) relay x1, doctor off"));
    on.push(await relayDrain(1, 0, MESSAGES, intervalMs, `(d) relay x1, doctor every ${intervalMs} ms`));
    log(`  round ${i + 1}: off ${Math.round(off.at(-1)!)} msg/s, on ${Math.round(on.at(-1)!)} msg/s`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  // Best of the rounds too: on a shared machine another load only ever slows a run down.
  return { off: median(off), on: median(on), bestOff: Math.max(...off), bestOn: Math.max(...on), intervalMs, rounds };
}

function printDoctorCost(d: Awaited<ReturnType<typeof doctorCost>>): void {
  console.log(`\nThe doctor's periodic checks on a busy relay (x1 drain, median of ${d.rounds} alternated runs)`);
  printTable([
    { case: "(d) relay x1, doctorIntervalMs 0 (off)", "msg/s": Math.round(d.off), "ratio to off": 1 },
    { case: `(d) relay x1, doctorIntervalMs ${d.intervalMs}`, "msg/s": Math.round(d.on), "ratio to off": d.on / d.off },
  ]);
  console.log(
    `doctor checks ratio (on / off): ${(d.on / d.off).toFixed(3)} of the medians, ${(d.bestOn / d.bestOff).toFixed(3)} of the best runs`,
  );
}

if (process.env.BENCH_ONLY === "keyed") {
  // The keyed drains against the unkeyed one, alternated KEYED_ROUNDS times (2): ratios of drains next to each other.
  const rounds = Number(process.env.KEYED_ROUNDS ?? 2);
  const keyed10Messages = Number(process.env.KEYED_10_MESSAGES ?? 20_000);
  log(`bench:relay, (b') only: ${MESSAGES} messages, ${rounds} rounds`);
  const rows: Array<Record<string, string | number>> = [];
  for (let i = 0; i < rounds; i++) {
    const two = await relayDrain(2);
    const keyed1000 = await relayDrain(2, 1_000);
    const keyed10 = await relayDrain(2, 10, keyed10Messages);
    log(`  round ${i + 1}: x2 ${Math.round(two)}, 1,000 keys ${Math.round(keyed1000)}, 10 keys ${Math.round(keyed10)}`);
    rows.push(
      { round: i + 1, case: "(b) relay x2, no keys", "msg/s": Math.round(two), "ratio to no keys": 1 },
      {
        round: i + 1,
        case: "(b') relay x2, 1,000 keys",
        "msg/s": Math.round(keyed1000),
        "ratio to no keys": keyed1000 / two,
      },
      {
        round: i + 1,
        case: `(b') relay x2, 10 keys (${keyed10Messages})`,
        "msg/s": Math.round(keyed10),
        "ratio to no keys": keyed10 / two,
      },
    );
  }
  printTable(rows);
  printCpuTable("The drains above", cpuRows);
} else if (process.env.BENCH_ONLY === "doctor") {
  log(`bench:relay, (d) only: ${MESSAGES} messages of ${BODY.length} bytes`);
  printDoctorCost(await doctorCost());
  printCpuTable("The drains above", cpuRows);
} else {
  log(`bench:relay: ${MESSAGES} messages of ${BODY.length} bytes; latency at ${RATE}/s for ${LATENCY_SECONDS}s`);
  log("(a) raw amqplib ...");
  const raw = await rawAmqplib();
  log("(b) relay x1 ...");
  const one = await relayDrain(1);
  log("(b) relay x2 ...");
  const two = await relayDrain(2);
  log("(b') relay x2, keyed, 1,000 keys ...");
  const keyed1000 = await relayDrain(2, 1_000);
  const KEYED_10_MESSAGES = Number(process.env.KEYED_10_MESSAGES ?? 20_000);
  log(`(b') relay x2, keyed, 10 keys (${KEYED_10_MESSAGES} messages) ...`);
  const keyed10 = await relayDrain(2, 10, KEYED_10_MESSAGES);
  log("(c) latency, relay in the app ...");
  const inApp = summarize(await latencyInApp());
  log("(c) latency, relay in a worker process ...");
  const inWorker = summarize(await latencyWorker(true));
  log("(c) latency, relay in a worker process, NOTIFY in every transaction ...");
  const inWorkerInTx = summarize(await latencyWorker("in-transaction"));

  console.log(`\n${OTEL_LINE}`);
  console.log(`\nThroughput (${MESSAGES} messages, ${BODY.length}-byte JSON, run ${randomBytes(2).toString("hex")})`);
  printTable([
    { case: "(a) raw amqplib, confirms per 1,000", "msg/s": Math.round(raw), "ratio to (a)": 1 },
    { case: "(b) relay x1, draining the backlog", "msg/s": Math.round(one), "ratio to (a)": one / raw },
    { case: "(b) relay x2, draining the backlog", "msg/s": Math.round(two), "ratio to (a)": two / raw },
  ]);
  console.log("\nOrdering keys: the same drain (relay x2) with every row keyed");
  printTable([
    {
      case: "(b') relay x2, 1,000 keys",
      "msg/s": Math.round(keyed1000),
      "ratio to (b) relay x2, no keys": keyed1000 / two,
    },
    {
      case: `(b') relay x2, 10 keys (${KEYED_10_MESSAGES} messages)`,
      "msg/s": Math.round(keyed10),
      "ratio to (b) relay x2, no keys": keyed10 / two,
    },
  ]);
  console.log(`\nCommit-to-consumer latency at ${RATE} msg/s for ${LATENCY_SECONDS} s (ms)`);
  printTable(
    [
      ["(c) relay in the app (in-process queue)", inApp],
      ["(c) relay in a worker (LISTEN, after-commit wake-up)", inWorker],
      ["(c) relay in a worker (LISTEN, NOTIFY in every tx)", inWorkerInTx],
    ].map(([name, s]) => {
      const x = s as ReturnType<typeof summarize>;
      return { case: name as string, n: x.n, p50: x.p50, p95: x.p95, p99: x.p99, max: x.max };
    }),
  );
  printCpuTable("Every case above", cpuRows);
  cpuRows.length = 0;
  log("(d) the doctor's periodic checks ...");
  printDoctorCost(await doctorCost());
  printCpuTable("The doctor's drains", cpuRows);
}
await consumer.close();
await pool.end();
await db.cleanup();
