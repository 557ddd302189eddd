// npm run bench:write — what the outbox costs a writing transaction. Prints, from one run, per-transaction p50/p99
// of: a plain model create; the same with one declared event (also with the caller's `select`, and outside any
// transaction); the same with one explicit $enqueue; and one $enqueue
// of 100 messages; each with its ratio to the plain write and the statements it sent (from Prisma's query log).
// Rounds interleave the cases so that machine noise hits them alike. ROUNDS / PER_ROUND env vars scale it.
import { performance } from "node:perf_hooks";
import { PrismaPg } from "@prisma/adapter-pg";
import { OutboxQueue, outbox } from "../src/index.js";
import { newPrismaClient, PrismaClient } from "../test/support/prisma.js";
import { benchDatabase, printTable, summarize } from "./support.js";

const ROUNDS = Number(process.env.ROUNDS ?? 10);
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
  return {
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
}
const cases = casesOn(base);

// Statements each case sends, counted once on a client that logs its queries.
const statements: Record<string, number> = {};
for (const [name, run] of Object.entries(casesOn(logged))) {
  await run(); // warm
  queries.length = 0;
  await run();
  statements[name] = queries.filter((q) => !/^(BEGIN|COMMIT|ROLLBACK)/i.test(q.trim())).length;
}

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const run of Object.values(cases)) for (let i = 0; i < 50; i++) await run(); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(cases)) {
    for (let i = 0; i < PER_ROUND; i++) {
      const t = performance.now();
      await run();
      samples[name]!.push(performance.now() - t);
    }
  }
}

const plain = summarize(samples["plain create in $transaction"]!);
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
await base.$disconnect();
await logged.$disconnect();
await db.cleanup();
