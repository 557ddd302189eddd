// npm run bench:write — what the outbox costs a writing transaction. Prints, from one run, per-transaction p50/p99
// of: a plain model create; the same with one declared event (also with the caller's `select`, and outside any
// transaction); the same with one explicit $enqueue; and one $enqueue
// of 100 messages; each with its ratio to the plain write and the statements it sent (from Prisma's query log).
// Rounds interleave the cases so that machine noise hits them alike. ROUNDS / PER_ROUND env vars scale it.
// Then a concurrency sweep: 1, 8, 32 and 64 writers in this process, each running transactions back to back (an
// order.create with a declared event): the plain write, the outbox write with a NOTIFY in every transaction (as first
// shipped: notify "in-transaction"), with the after-commit wake-up (notify: true, the default), and with none
// (notify: false: the cost of the NOTIFY is the ratio to this one); a connection
// LISTENs meanwhile, as a relay would. tx/s and p99 per case, and their ratios to the plain write. SWEEP_SECONDS
// (default 4) per case and level, in two interleaved halves; WRITERS (default 1,8,32,64).
// BENCH_OTEL=1 runs every case with an OpenTelemetry SDK registered and inside an active span (bench/otel.ts): compare
// its ratios with a run without it for the cost of tracing and metrics.
// Last, ordering keys: KEYED_WRITERS (32, at most the largest of WRITERS) writers through pg, one connection each,
// without a key, with distinct keys and with one hot key, KEYED_SECONDS (default SWEEP_SECONDS) per case.
import { performance } from "node:perf_hooks";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { Notifier } from "../src/extension/notifier.js";
import { OutboxQueue, outbox } from "../src/index.js";
import { normalizeMessage } from "../src/message/message.js";
import { outboxNames } from "../src/sql/names.js";
import {
  insertKeyedMessagesParams,
  insertMessagesParams,
  insertMessagesSql,
  insertSingleMessageParams,
  insertSingleMessageSql,
} from "../src/sql/outbox/insert.js";
import { notifySql } from "../src/sql/outbox/notify.js";
import { newPrismaClient, PrismaClient } from "../test/support/prisma.js";
import { CpuTally, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { inSpan, OTEL_LINE } from "./otel.js";
import { benchDatabase, printTable, summarize } from "./support.js";

const ROUNDS = Number(process.env.ROUNDS ?? 10);
const SWEEP_SECONDS = Number(process.env.SWEEP_SECONDS ?? 4);
const WRITERS = (process.env.WRITERS ?? "1,8,32,64").split(",").map(Number);
const PER_ROUND = Number(process.env.PER_ROUND ?? 200);

const db = await benchDatabase();
const base = newPrismaClient(db.url);
const queries: string[] = [];
const logged = new PrismaClient({
  adapter: new PrismaPg({ connectionString: db.url }),
  log: [{ level: "query", emit: "event" }],
}) as unknown as typeof base & { $on(event: "query", cb: (e: { query: string }) => void): void };
logged.$on("query", (e) => queries.push(e.query));

// A queue with no relay attached: the hand-off costs what it costs in an app, and drops beyond its bound.
const queue = new OutboxQueue();
let n = 0;
const data = () => ({ number: `o${n++}`, amount: 1 });
const hundred = Array.from({ length: 100 }, (_, i) => ({
  routingKey: "bench.many",
  payload: { i, text: "x".repeat(64) },
}));

/** The four cases, on a given base client (the timed one, or the one that logs its queries). */
function casesOn(client: typeof base): Record<string, () => Promise<unknown>> {
  const withEvent = client.$extends(
    outbox<typeof base>({ exchange: "bench", queue, events: { Order: { create: true } } }),
  );
  const withEnqueue = client.$extends(outbox({ exchange: "bench", queue }));
  const cases: Record<string, () => Promise<unknown>> = {
    "plain create in $transaction": () => client.$transaction((tx) => tx.order.create({ data: data() })),
    "create + declared event": () => withEvent.$transaction((tx) => tx.order.create({ data: data() })),
    // The caller narrows the result: the event's record still has every field (the write's own query is widened).
    "create select {id} + declared event": () =>
      withEvent.$transaction((tx) => tx.order.create({ data: data(), select: { id: true } })),
    // Outside any transaction the extension opens one around the write and the INSERT.
    "create, no $transaction, + declared event": () => withEvent.order.create({ data: data() }),
    "create + $enqueue(1)": () =>
      withEnqueue.$transaction(async (tx) => {
        await tx.order.create({ data: data() });
        await tx.$enqueue({ routingKey: "bench.one", payload: { n } });
      }),
    "$enqueue(100) on its own": () => withEnqueue.$enqueue(hundred),
  };
  // With BENCH_OTEL=1 each transaction runs in a span of its own, as a traced request's would (the plain one too).
  return Object.fromEntries(Object.entries(cases).map(([name, run]) => [name, () => inSpan(run)]));
}
const cases = casesOn(base);

// Statements each case sends, counted once on a client that logs its queries.
const statements: Record<string, number> = {};
for (const [name, run] of Object.entries(casesOn(logged))) {
  await run(); // warm
  queries.length = 0;
  await run();
  // The after-commit NOTIFY is not in the transaction (and at most one per 5 ms): not counted.
  statements[name] = queries.filter(
    (q) => !/^(BEGIN|COMMIT|ROLLBACK)/i.test(q.trim()) && !q.includes("pg_notify"),
  ).length;
}

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const run of Object.values(cases)) for (let i = 0; i < 50; i++) await run(); // warm-up
// CPU time per transaction (bench/cpu.ts): this process (Prisma and the extension) and PostgreSQL's.
const cpuTally = new CpuTally();
const meter = () => startCpu({ "bench (writers)": process.pid }, [databaseOf(db.url)]);
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(cases)) {
    const cpu = meter();
    for (let i = 0; i < PER_ROUND; i++) {
      const t = performance.now();
      await run();
      samples[name]!.push(performance.now() - t);
    }
    cpuTally.add(name, cpu.stop(), PER_ROUND);
  }
}

const plain = summarize(samples["plain create in $transaction"]!);
console.log(OTEL_LINE);
printTable(
  Object.entries(samples).map(([name, s]) => {
    const x = summarize(s);
    return {
      case: name,
      txs: x.n,
      "p50 ms": x.p50,
      "p99 ms": x.p99,
      "p50 ratio to plain": x.p50 / plain.p50,
      "p99 ratio to plain": x.p99 / plain.p99,
      "statements (excl. BEGIN/COMMIT)": statements[name]!,
    };
  }),
);
// The concurrency sweep, on a client whose pool holds every writer (and the wake-up's NOTIFY).
const wide = new PrismaClient({
  adapter: new PrismaPg({ connectionString: db.url, max: Math.max(...WRITERS) + 2 }),
}) as unknown as typeof base;
const listener = new pg.Client({ connectionString: db.url });
await listener.connect();
let notifications = 0;
listener.on("notification", () => notifications++);
await listener.query("LISTEN prisma_outbox");
const sweepCases: Record<string, () => Promise<unknown>> = {
  plain: () => inSpan(() => wide.$transaction((tx) => tx.order.create({ data: data() }))),
  "outbox, no NOTIFY": (() => {
    const c = wide.$extends(
      outbox<typeof base>({ exchange: "bench", queue, notify: false, events: { Order: { create: true } } }),
    );
    return () => inSpan(() => c.order.create({ data: data() }));
  })(),
  "NOTIFY in every tx": (() => {
    const c = wide.$extends(
      outbox<typeof base>({ exchange: "bench", queue, notify: "in-transaction", events: { Order: { create: true } } }),
    );
    return () => inSpan(() => c.order.create({ data: data() }));
  })(),
  "after-commit wake-up": (() => {
    const c = wide.$extends(outbox<typeof base>({ exchange: "bench", queue, events: { Order: { create: true } } }));
    return () => inSpan(() => c.order.create({ data: data() }));
  })(),
};

/** `writers` loops running `run` back to back for `ms`; returns the latencies of the transactions. */
async function saturate(run: () => Promise<unknown>, writers: number, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await run();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

for (const run of Object.values(sweepCases)) await saturate(run, 8, 300); // warm-up
const sweep: Array<Record<string, string | number>> = [];
const ratios: string[] = [];
for (const writers of WRITERS) {
  const lat: Record<string, number[]> = Object.fromEntries(Object.keys(sweepCases).map((k) => [k, []]));
  const notes: Record<string, number> = Object.fromEntries(Object.keys(sweepCases).map((k) => [k, 0]));
  for (let half = 0; half < 2; half++) {
    for (const [name, run] of Object.entries(sweepCases)) {
      const before = notifications;
      const cpu = meter();
      const done = await saturate(run, writers, (SWEEP_SECONDS * 1000) / 2);
      cpuTally.add(`${writers} Prisma writers, ${name}`, cpu.stop(), done.length);
      lat[name]!.push(...done);
      await new Promise((r) => setTimeout(r, 50)); // the last notifications arrive
      notes[name]! += notifications - before;
    }
  }
  const plainRate = lat.plain!.length / SWEEP_SECONDS;
  for (const [name, samples] of Object.entries(lat)) {
    const rate = samples.length / SWEEP_SECONDS;
    sweep.push({
      writers,
      case: name,
      "tx/s": Math.round(rate),
      "p99 ms": summarize(samples).p99,
      "tx/s / plain": rate / plainRate,
      "tx/s / no NOTIFY": name === "plain" ? "-" : rate / (lat["outbox, no NOTIFY"]!.length / SWEEP_SECONDS),
      "NOTIFYs/s": Math.round(notes[name]! / SWEEP_SECONDS),
    });
  }
  const rate = (name: string) => lat[name]!.length / SWEEP_SECONDS;
  const quiet = rate("outbox, no NOTIFY");
  ratios.push(
    `ratio at ${writers} writers, to the outbox write without NOTIFY: ` +
      `NOTIFY in every tx ${(rate("NOTIFY in every tx") / quiet).toFixed(3)}, ` +
      `after-commit wake-up ${(rate("after-commit wake-up") / quiet).toFixed(3)}; ` +
      `to the plain write: outbox without NOTIFY ${(quiet / plainRate).toFixed(3)}, ` +
      `after-commit wake-up ${(rate("after-commit wake-up") / plainRate).toFixed(3)}`,
  );
}
console.log(`\nConcurrent writers, ${SWEEP_SECONDS} s per case and level (order.create with a declared event)`);
printTable(sweep);
for (const line of ratios) console.log(line);

// The same statements through pg, one connection per writer and no Prisma: what PostgreSQL does when the client is
// not the bottleneck (one Node process drives Prisma's writes at under 2,000 tx/s here; pgbench measured 3,380 tx/s
// with a NOTIFY in every transaction at 32 writers and 11,542 without).
await wide.$disconnect(); // its connections, before the next 64 open
const rawPool = new pg.Pool({ connectionString: db.url, max: Math.max(...WRITERS) + 2 });
rawPool.on("error", () => {}); // the database is dropped at the end
const oneMessage = () =>
  normalizeMessage(
    { exchange: "bench", routingKey: "order.created", payload: { n } },
    {},
    { maxPayloadBytes: 1_048_576 },
  );
const rawMessage = () => insertSingleMessageParams(oneMessage());
const names = outboxNames();
// What the extension sends for one message without a key.
const INSERT_ONE_SQL = insertSingleMessageSql(names, false);
const INSERT_ONE_NOTIFY_SQL = insertSingleMessageSql(names, true);

// One message without a key, by the two statements that can write it (sql/outbox/insert.ts): the VALUES row the
// extension sends for one message and the unnest it sends for several. Autocommit, one pg connection, the two
// interleaved in ROUNDS rounds of PER_ROUND; PostgreSQL's CPU per statement in the CPU table.
{
  const single: Record<string, [string, () => unknown[]]> = {
    "one message: VALUES row": [INSERT_ONE_SQL, rawMessage],
    "one message: unnest": [insertMessagesSql(names, false), () => insertMessagesParams([oneMessage()])],
  };
  const times: Record<string, number[]> = { "one message: VALUES row": [], "one message: unnest": [] };
  const c = await rawPool.connect();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, [sql, params]] of Object.entries(single)) {
      const cpu = meter();
      for (let i = 0; i < PER_ROUND; i++) {
        const t = performance.now();
        await c.query(sql, params());
        times[name]!.push(performance.now() - t);
      }
      cpuTally.add(`pg autocommit, ${name}`, cpu.stop(), PER_ROUND);
    }
  }
  c.release();
  const values = summarize(times["one message: VALUES row"]!);
  const unnest = summarize(times["one message: unnest"]!);
  console.log(
    `\nOne message, autocommit through pg: VALUES row p50 ${values.p50.toFixed(3)} ms, unnest p50 ` +
      `${unnest.p50.toFixed(3)} ms; ratio VALUES / unnest: p50 ${(values.p50 / unnest.p50).toFixed(3)}, ` +
      `p99 ${(values.p99 / unnest.p99).toFixed(3)}`,
  );
}
const rawNotifier = new Notifier(() => rawPool.query(notifySql(names)), 5);
type Tx = (c: pg.PoolClient) => Promise<void>;
const orderInsert = (c: pg.PoolClient) => c.query('INSERT INTO "Order" (number, amount) VALUES ($1, 1)', [`r${n++}`]);
const rawCases: Record<string, Tx> = {
  plain: async (c) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query("COMMIT");
  },
  "outbox, no NOTIFY": async (c) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query(INSERT_ONE_SQL, rawMessage());
    await c.query("COMMIT");
  },
  "NOTIFY in every tx": async (c) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query(INSERT_ONE_NOTIFY_SQL, rawMessage());
    await c.query("COMMIT");
  },
  "after-commit wake-up": async (c) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query(INSERT_ONE_SQL, rawMessage());
    await c.query("COMMIT");
    rawNotifier.committed();
  },
};
const rawClients = await Promise.all(Array.from({ length: Math.max(...WRITERS) }, () => rawPool.connect()));
const rawSweep: Array<Record<string, string | number>> = [];
const rawRatios: string[] = [];
for (const writers of WRITERS) {
  const count: Record<string, number[]> = Object.fromEntries(Object.keys(rawCases).map((k) => [k, []]));
  for (let half = 0; half < 2; half++) {
    for (const [name, tx] of Object.entries(rawCases)) {
      let i = 0;
      const cpu = meter();
      const done = await saturate(() => tx(rawClients[i++ % writers]!), writers, (SWEEP_SECONDS * 1000) / 2);
      cpuTally.add(`${writers} pg writers, ${name}`, cpu.stop(), done.length);
      count[name]!.push(...done);
    }
  }
  const rate = (name: string) => count[name]!.length / SWEEP_SECONDS;
  for (const name of Object.keys(rawCases)) {
    rawSweep.push({
      writers,
      case: name,
      "tx/s": Math.round(rate(name)),
      "p99 ms": summarize(count[name]!).p99,
      "tx/s / plain": rate(name) / rate("plain"),
      "tx/s / no NOTIFY": name === "plain" ? "-" : rate(name) / rate("outbox, no NOTIFY"),
    });
  }
  rawRatios.push(
    `ratio at ${writers} writers (pg, no Prisma), to the outbox write without NOTIFY: ` +
      `NOTIFY in every tx ${(rate("NOTIFY in every tx") / rate("outbox, no NOTIFY")).toFixed(3)}, ` +
      `after-commit wake-up ${(rate("after-commit wake-up") / rate("outbox, no NOTIFY")).toFixed(3)}`,
  );
}
console.log(`\nThe same statements through pg, one connection per writer, ${SWEEP_SECONDS} s per case and level`);
printTable(rawSweep);
for (const line of rawRatios) console.log(line);

// Ordering keys: KEYED_WRITERS writers (32) through pg, each transaction an order insert and one message, without a
// key, with a key of the writer's own (distinct keys: the key locks never meet), and with one key for all (a hot
// key: every writer waits for the one before it to commit). p50 and tx/s, as ratios to the unkeyed write.
const KEYED_WRITERS = Math.min(Number(process.env.KEYED_WRITERS ?? 32), Math.max(...WRITERS));
const keyedMessage = (key: string | undefined) =>
  normalizeMessage(
    { exchange: "bench", routingKey: "order.created", payload: { n }, ...(key === undefined ? {} : { key }) },
    {},
    { maxPayloadBytes: 1_048_576 },
  );
// One message with one key a transaction: the statement the extension picks for it (keyShape "one").
const INSERT_KEYED_SQL = insertMessagesSql(names, false, "one");
const keyedCases: Record<string, (c: pg.PoolClient, writer: number) => Promise<void>> = {
  "no key": async (c) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query(INSERT_ONE_SQL, insertSingleMessageParams(keyedMessage(undefined)));
    await c.query("COMMIT");
  },
  "distinct keys (one per writer)": async (c, writer) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query(INSERT_KEYED_SQL, insertKeyedMessagesParams([keyedMessage(`writer-${writer}`)]));
    await c.query("COMMIT");
  },
  "one hot key": async (c) => {
    await c.query("BEGIN");
    await orderInsert(c);
    await c.query(INSERT_KEYED_SQL, insertKeyedMessagesParams([keyedMessage("hot")]));
    await c.query("COMMIT");
  },
};
const KEYED_SECONDS = Number(process.env.KEYED_SECONDS ?? SWEEP_SECONDS);
/** Each writer on its own connection, transactions back to back, for `ms`. */
async function keyedRun(tx: (c: pg.PoolClient, writer: number) => Promise<void>, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: KEYED_WRITERS }, async (_, w) => {
      while (performance.now() < end) {
        const t = performance.now();
        await tx(rawClients[w]!, w);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}
const keyedLat: Record<string, number[]> = Object.fromEntries(Object.keys(keyedCases).map((k) => [k, []]));
for (let quarter = 0; quarter < 4; quarter++) {
  for (const [name, tx] of Object.entries(keyedCases)) {
    const cpu = meter();
    const done = await keyedRun(tx, (KEYED_SECONDS * 1000) / 4);
    cpuTally.add(`${KEYED_WRITERS} pg writers, ${name}`, cpu.stop(), done.length);
    keyedLat[name]!.push(...done);
  }
}
const keyedRows = Object.entries(keyedLat).map(([name, samples]) => {
  const x = summarize(samples);
  return { case: name, "tx/s": Math.round(samples.length / KEYED_SECONDS), p50: x.p50, p99: x.p99 };
});
const unkeyed = keyedRows[0]!;
console.log(
  `\nOrdering keys: ${KEYED_WRITERS} writers through pg, ${KEYED_SECONDS} s per case (order insert + 1 message)`,
);
printTable(
  keyedRows.map((r) => ({
    ...r,
    "p50 ratio to no key": r.p50 / unkeyed.p50,
    "tx/s ratio": r["tx/s"] / unkeyed["tx/s"],
  })),
);
for (const r of keyedRows.slice(1)) {
  console.log(
    `ratio at ${KEYED_WRITERS} writers, ${r.case} to no key: p50 ${(r.p50 / unkeyed.p50).toFixed(3)}, tx/s ${(r["tx/s"] / unkeyed["tx/s"]).toFixed(3)}`,
  );
}
printCpuTable("bench:write (per transaction)", cpuTally.rows);
for (const c of rawClients) c.release();
await new Promise((r) => setTimeout(r, 20));
await rawPool.end();

await listener.end();
await base.$disconnect();
await logged.$disconnect();
await db.cleanup();
