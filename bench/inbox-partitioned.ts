// bench:inbox (p), called from bench/inbox.ts (CASES containing p; not in the default CASES): handled/s of inbox
// processes (bench/inbox-partitioned-process.ts, one Prisma insert per message) on one queue partitioned into
// PARTITIONS (16) partitions (docs/scaling.md#partitioned-inbox-queues), with 1, 2 and 4 processes, against the
// baseline of the same run: 1 process on a plain queue.
// Each case: a fresh exchange and queue, the processes started and, for a partitioned queue, settled on their shares
// (16, 8 or 4 partitions each: ownership moves while they join, and a partition moving mid-run would be measured),
// then PARTITIONED_MESSAGES (8000; the figures in docs/performance.md used 12000) messages published to the exchange with confirms, keyed over KEYS (1000) keys
// (header x-ordering-key, which the partitions hash on; the plain queue gets the same headers) and with message ids.
// handled/s from the first "handled" event to the last, across processes (wall clock, one machine). Publishing runs
// during the first part of the measure: its RabbitMQ and bench-process CPU is in the CPU table.
// A second table gives each process's counts per message over the measure (bench/inbox-partitioned-process.ts): receive
// batch size, acks, statements by kind, claimed rows, read/write system calls and context switches; with
// PARTITIONED_CPU_PROF=<dir> each process also writes a CPU profile of the measure there (note: the profiler samples
// wall time, so on a machine with more runnable processes than cores it counts time spent waiting for a core).
// PARTITIONED_BASELINE (on by default in the paced forms, PARTITIONED_RATE or PARTITIONED_TOTAL_RATE; 0 turns it off,
// 1 turns it on unpaced): before each partitioned case, the same number of plain-loop processes
// (bench/plain-partitioned-process.ts: amqplib, one Prisma transaction inserting the row per message, then the ack; no
// library) on the same partitions, at the same pace, with the same messages. Its CPU per message growing with processes
// is what the machine alone does (more node processes, preemption, colder caches on few cores); the ratio lines divide
// the inbox's growth (K processes / 1) by the plain loop's: above 1 is what the library adds as processes are added.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import type { ConfirmChannel } from "amqplib";
import type pg from "pg";
import { declarePartitions } from "../src/transport/amqp/partitions.js";
import { uniqueName } from "../test/support/consumer.js";
import { type CpuRow, startCpu } from "./cpu.js";
import { baselineLines, perMessage } from "./inbox-partitioned-report.js";
import { printTable } from "./support.js";

const MESSAGES = Number(process.env.PARTITIONED_MESSAGES ?? 8_000);
const KEYS = Number(process.env.KEYS ?? 1_000);
const PARTITIONS = Number(process.env.PARTITIONS ?? 16);
/** PARTITIONED_PROCESSES: the process counts of the partitioned cases (comma-separated; default 1,2,4). */
const PROCESSES = (process.env.PARTITIONED_PROCESSES ?? "1,2,4").split(",").map(Number);
/**
 * PARTITIONED_RATE (messages/s per process): the paced form. Each case publishes at its process count times this rate,
 * so every process gets the same load in every case (as on a machine with a core per process, which 2 cores are not: 4
 * processes at 50/s each use ~1.9 cores, docs/performance.md); the ratios are then of inbox CPU per message (which
 * batching makes depend on a process's own rate), not of handled/s (the pace).
 */
const RATE = process.env.PARTITIONED_RATE ? Number(process.env.PARTITIONED_RATE) : undefined;
/**
 * PARTITIONED_TOTAL_RATE (messages/s of the whole case): every case at this one rate, whatever its process count, so
 * that the machine carries the same load in every case (each process gets rate / processes). Then what grows with
 * processes is what each process costs on its own (its timers, its smaller share of the flow), not the machine's
 * cores filling up. Overrides PARTITIONED_RATE.
 */
const TOTAL_RATE = process.env.PARTITIONED_TOTAL_RATE ? Number(process.env.PARTITIONED_TOTAL_RATE) : undefined;
/**
 * PARTITIONED_IDLE_MS: before publishing, each case first measures its processes idle (settled, no messages) for this
 * long, and prints each one's idle CPU in ms per second and the inbox CPU per message less that idle cost over the
 * measure: what a process costs per second whatever its load (its timers: sweeps, rebalance ticks, the bench's own
 * 20 ms report), which weighs per message in inverse proportion to the process's own rate. 0 (default): not measured.
 */
const IDLE_MS = Number(process.env.PARTITIONED_IDLE_MS ?? 0);
/**
 * PARTITIONED_WARMUP (messages; default 0): published and handled at the case's pace before the measure, so that a
 * process's start (JIT, the garbage collections that shrink its heap after loading, first transactions) is not in it.
 * Started moments before the measure, an inbox process still spends ~20 ms of CPU a second idle, ~9 ms once it has
 * run 40 s: a cost per process, which 4 processes pay four times over the same messages.
 */
const WARMUP = Number(process.env.PARTITIONED_WARMUP ?? 0);
const paceOf = (processes: number) => TOTAL_RATE ?? (RATE === undefined ? undefined : RATE * processes);
/** PARTITIONED_BASELINE: the plain-loop cases (see the top of the file). */
const BASELINE =
  process.env.PARTITIONED_BASELINE === undefined ? paceOf(1) !== undefined : process.env.PARTITIONED_BASELINE !== "0";

export interface PartitionedBenchContext {
  db: { url: string; amqpUrl: string };
  pool: pg.Pool;
  channel: ConfirmChannel;
  root: string;
  databases: string[];
  cpuRows: CpuRow[];
  queues: string[];
  exchanges: string[];
  log(s: string): void;
}

/** A process's counts over the measured span (bench/inbox-partitioned-process.ts). */
export interface ChildStats {
  batches: number;
  deliveries: number;
  acks: number;
  statements: Record<string, number>;
  /** Rows the processor's claims returned, and how many claims returned none. */
  claimed: { due: number; dueEmpty: number; byIds: number; byIdsEmpty: number };
  /** The kernel's counts over the span: syscr, syscw, voluntary_ctxt_switches, nonvoluntary_ctxt_switches. */
  kernel: Record<string, number>;
}

interface Child {
  pid: number | undefined;
  handled: number;
  owned: number;
  stats: ChildStats | undefined;
  measure(): void;
  stop(): Promise<void>;
}

/** An inbox process, or with `plain` = [index, count] a plain-loop process consuming its share of the partitions. */
function spawnWorker(
  ctx: PartitionedBenchContext,
  exchange: string,
  queue: string,
  partitions: number,
  span: Span,
  plain?: [number, number],
) {
  const { url, amqpUrl } = ctx.db;
  const args = plain
    ? [
        "bench/plain-partitioned-process.ts",
        url,
        amqpUrl,
        queue,
        String(partitions),
        String(plain[0]),
        String(plain[1]),
      ]
    : ["bench/inbox-partitioned-process.ts", url, amqpUrl, exchange, queue, String(partitions)];
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: ctx.root,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const state: Child = {
    pid: child.pid,
    handled: 0,
    owned: 0,
    stats: undefined,
    measure() {
      child.send("measure");
    },
    async stop() {
      child.removeAllListeners("exit");
      const exited = once(child, "exit");
      child.send("stop");
      await exited;
    },
  };
  const ready = new Promise<Child>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`inbox process exited with ${code}`)));
    child.on("message", (m: unknown) => {
      if (m === "ready") return resolve(state);
      const r = m as { owned?: number; handled?: number; first?: number; last?: number; stats?: ChildStats };
      if (r.owned !== undefined) state.owned = r.owned;
      if (r.stats !== undefined) state.stats = r.stats;
      if (r.handled !== undefined) {
        state.handled += r.handled;
        span.handled += r.handled;
        span.first = Math.min(span.first, r.first!);
        span.last = Math.max(span.last, r.last!);
      }
    });
  });
  return ready;
}

interface Span {
  handled: number;
  first: number;
  last: number;
}

async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`bench (p): ${what} not after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Publishes MESSAGES with confirms, back to back or at `perSecond` (in steps of 20 ms). */
async function publish(channel: ConfirmChannel, exchange: string, perSecond?: number, count = MESSAGES): Promise<void> {
  const body = Buffer.from(JSON.stringify({ order: 1, note: "x".repeat(100) }));
  const started = performance.now();
  const step = perSecond === undefined ? 1_000 : Math.max(1, Math.round(perSecond / 50));
  for (let sent = 0; sent < count; ) {
    const n = Math.min(step, count - sent);
    for (let i = 0; i < n; i++) {
      const ok = channel.publish(exchange, "bench.partitioned", body, {
        persistent: true,
        messageId: randomUUID(),
        contentType: "application/json",
        headers: { "x-ordering-key": `key-${(sent + i) % KEYS}` },
      });
      if (!ok) await once(channel, "drain");
    }
    await channel.waitForConfirms();
    sent += n;
    const ahead = perSecond === undefined ? 0 : started + (sent / perSecond) * 1000 - performance.now();
    if (ahead > 0) await new Promise((res) => setTimeout(res, ahead));
  }
}

/** One case: `processes` inbox (or plain-loop) processes on a queue of `partitions` partitions (0: plain). */
async function runCase(
  ctx: PartitionedBenchContext,
  label: string,
  processes: number,
  partitions: number,
  plain = false,
) {
  await ctx.pool.query('TRUNCATE inbox_message, "Effect" RESTART IDENTITY');
  const exchange = uniqueName("bench.part.x");
  const queue = uniqueName("bench.part.q");
  ctx.exchanges.push(exchange);
  await ctx.channel.assertExchange(exchange, "topic", { durable: true });
  if (partitions > 0) {
    for (let i = 0; i < partitions; i++) ctx.queues.push(`${queue}.p${i}`);
    ctx.exchanges.push(`${queue}.partitions`);
    await declarePartitions(ctx.db.amqpUrl, {
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      exchanges: [],
      partitions,
    });
  } else {
    ctx.queues.push(queue);
  }
  const span: Span = { handled: 0, first: Number.POSITIVE_INFINITY, last: 0 };
  const children: Child[] = [];
  for (let i = 0; i < processes; i++) {
    children.push(await spawnWorker(ctx, exchange, queue, partitions, span, plain ? [i, processes] : undefined));
  }
  if (partitions > 0) {
    const share = partitions / processes;
    await waitFor(`each process owning ${share} partitions`, () => children.every((c) => c.owned === share), 60_000);
  }
  const names = Object.fromEntries(children.map((c, i) => [`inbox ${i + 1}`, c.pid]));
  if (WARMUP > 0) {
    await publish(ctx.channel, exchange, paceOf(processes), WARMUP);
    await waitFor(`${WARMUP} warm-up messages handled`, () => span.handled >= WARMUP, 170_000);
    Object.assign(span, { handled: 0, first: Number.POSITIVE_INFINITY, last: 0 });
    for (const c of children) c.handled = 0;
  }
  let idlePerSecond: number[] = [];
  if (IDLE_MS > 0) {
    const idle = startCpu(names, []);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const idleUsage = idle.stop();
    idlePerSecond = children.map((_c, i) => ((idleUsage[`inbox ${i + 1}`] ?? 0) * 1000) / IDLE_MS);
  }
  for (const c of children) c.measure();
  const measureStart = performance.now();
  const cpu = startCpu({ "bench (publisher)": process.pid, ...names }, ctx.databases);
  await publish(ctx.channel, exchange, paceOf(processes));
  await waitFor(`${MESSAGES} handled`, () => span.handled >= MESSAGES, 170_000);
  const usage = cpu.stop();
  const measuredS = (performance.now() - measureStart) / 1000;
  ctx.cpuRows.push({ case: `(p) ${label}`, cpu: usage, messages: MESSAGES });
  for (const c of children) await c.stop();
  const { rows } = await ctx.pool.query<{ n: string; d: string }>(
    'SELECT count(*) AS n, count(DISTINCT "messageId") AS d FROM "Effect"',
  );
  if (Number(rows[0]!.n) !== MESSAGES + WARMUP || Number(rows[0]!.d) !== MESSAGES + WARMUP) {
    throw new Error(`bench (p) ${label}: ${rows[0]!.n} effects, ${rows[0]!.d} distinct, expected ${MESSAGES}`);
  }
  const inboxMs = children.reduce((sum, _c, i) => sum + (usage[`inbox ${i + 1}`] ?? 0), 0);
  return {
    perSecond: MESSAGES / ((span.last - span.first) / 1000),
    inboxUs: Math.round((inboxMs * 1000) / MESSAGES),
    idlePerSecond,
    /** The inbox CPU per message less what the processes would have spent idle over the measure. */
    busyUs: Math.round(((inboxMs - idlePerSecond.reduce((a, b) => a + b, 0) * measuredS) * 1000) / MESSAGES),
    stats: children.map((c) => ({ handled: c.handled, ...c.stats! })),
    perProcess: children.map(
      (c, i) => `${(((usage[`inbox ${i + 1}`] ?? 0) * 1000) / Math.max(1, c.handled)).toFixed(0)} (${c.handled})`,
    ),
  };
}

/** Runs the cases, prints their table; returns the "ratio" lines. */
export async function runPartitionedCases(ctx: PartitionedBenchContext): Promise<string[]> {
  const t0 = performance.now();
  const processes = (n: number) => `${n} process${n > 1 ? "es" : ""}`;
  const cases: Array<[string, number, number, boolean]> = [["1 process, plain queue (baseline)", 1, 0, false]];
  for (const n of PROCESSES) {
    if (BASELINE) cases.push([`plain loop, ${processes(n)}, ${PARTITIONS} partitions`, n, PARTITIONS, true]);
    cases.push([`${processes(n)}, ${PARTITIONS} partitions`, n, PARTITIONS, false]);
  }
  const all = [];
  for (const [label, n, partitions, plain] of cases) {
    ctx.log(`(p) ${label} ...`);
    all.push({ label, plain, ...(await runCase(ctx, label, n, partitions, plain)) });
  }
  const results = all.filter((r) => !r.plain);
  const plainLoops = all.filter((r) => r.plain);
  const base = results[0]!.perSecond;
  const warm = WARMUP > 0 ? `, after ${WARMUP} warm-up messages` : "";
  const paced =
    TOTAL_RATE !== undefined
      ? `, published at ${TOTAL_RATE}/s in every case`
      : RATE === undefined
        ? ""
        : `, published at ${RATE}/s per process`;
  console.log(
    `\nPartitioned queue: ${MESSAGES} messages over ${KEYS} ordering keys, one Prisma insert each${paced}${warm} ` +
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
  printTable(
    all.map((r) => ({
      case: `(p) ${r.label}`,
      "handled/s": Math.round(r.perSecond),
      "ratio to plain": r.perSecond / base,
      "inbox CPU µs/msg (all processes)": r.inboxUs,
      "CPU µs/msg per process (its messages)": r.perProcess.join(" "),
      ...(IDLE_MS > 0
        ? {
            "idle CPU ms/s per process": r.idlePerSecond.map((x) => x.toFixed(1)).join(" "),
            "inbox CPU µs/msg less idle": r.busyUs,
          }
        : {}),
    })),
  );
  printTable(all.flatMap((r) => r.stats.map((s, i) => ({ case: `(p) ${r.label}`, ...perMessage(i + 1, s) }))));
  const growth = BASELINE ? baselineLines(results.slice(1), plainLoops, PROCESSES, IDLE_MS > 0) : [];
  if (paceOf(1) !== undefined) {
    const one = results[1]!;
    return results
      .slice(2)
      .flatMap((r) => [
        `ratio (p) inbox CPU per message, ${r.label} / 1 process: ${(r.inboxUs / one.inboxUs).toFixed(3)}`,
        ...(IDLE_MS > 0
          ? [`ratio (p) inbox CPU per message less idle, ${r.label} / 1 process: ${(r.busyUs / one.busyUs).toFixed(3)}`]
          : []),
      ])
      .concat(growth);
  }
  return [
    ...results.slice(1).map((r) => `ratio (p) ${r.label} / plain queue: ${(r.perSecond / base).toFixed(3)}`),
    ...growth,
  ];
}
