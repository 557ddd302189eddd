// One inbox process of bench:inbox (p) (bench/inbox-partitioned.ts): an inbox on the queue argv[4], bound to the
// exchange argv[3], partitioned into argv[5] partitions (0: a plain queue), with a handler doing one Prisma insert.
// Over IPC: "ready" once started; { owned } (how many partitions it consumes) on each change; { handled, first, last }
// (a count and the wall-clock ms of the first and last "handled" events since the previous report) every 20 ms;
// "measure" starts the counts of the measured span (and, with PARTITIONED_CPU_PROF=<dir>, a CPU profile of it);
// "stop" sends { stats } (the counts since "measure"), writes the profile, and stops it.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { inbox } from "../src/index.js";
import { newPrismaClient } from "../test/support/prisma.js";
import { kernelCounts } from "./cpu.js";

const [databaseUrl, amqpUrl, exchange, queue, partitionsArg] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const partitions = Number(partitionsArg);
/** PARTITIONED_REPORT_MS (20): how often the counts go to the bench (a timer of the bench's own in every process). */
const REPORT_MS = Number(process.env.PARTITIONED_REPORT_MS ?? 20);

/**
 * What one process did per message in the measured span: receive batches, broker acks, and statements by kind (every
 * pg query of the process, Prisma's included: the adapter's pool is pg's). Counted by wrapping the prototypes, which
 * costs a counter increment per call.
 */
const stats = {
  batches: 0,
  deliveries: 0,
  acks: 0,
  statements: {} as Record<string, number>,
  claimed: { due: 0, dueEmpty: 0, byIds: 0, byIdsEmpty: 0 },
};
let counting = false;
let kernelAtStart: Record<string, number> = {};
/** Statement texts are few and fixed: each is classified once, so the measure does not pay a regex per statement. */
const kinds = new Map<string, string>();
function kind(text: string): string {
  let k = kinds.get(text);
  if (k === undefined) {
    k = classify(text);
    kinds.set(text, k);
  }
  return k;
}
function classify(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  if (/^UPDATE \S+ m SET attempts = m\.attempts \+ 1/.test(t))
    return t.includes("= ANY") ? "claim by ids" : "claim due";
  if (/^BEGIN/.test(t) && t.includes("attempts + 1")) return "claim due";
  if (/^INSERT INTO "public"\."Effect"|^INSERT INTO "Effect"/i.test(t)) return "handler insert (Prisma)";
  const words = t.split(" ");
  return words.slice(0, 3).join(" ").slice(0, 40);
}
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  if (counting) {
    const first = args[0] as string | { text?: string };
    const text = typeof first === "string" ? first : (first?.text ?? "?");
    const k = kind(text);
    stats.statements[k] = (stats.statements[k] ?? 0) + 1;
    const callback = args.at(-1);
    if (k.startsWith("claim") && typeof callback === "function") {
      // The claim's rows (a due claim's result is its third statement's), and the claims that found none. The pool
      // gives the client a callback.
      args[args.length - 1] = (error: unknown, r: pg.QueryResult | pg.QueryResult[]) => {
        const n = (Array.isArray(r) ? r[2] : r)?.rows.length ?? 0;
        const into = k === "claim due" ? "due" : "byIds";
        stats.claimed[into] += n;
        if (n === 0) stats.claimed[`${into}Empty`]++;
        return callback(error, r);
      };
    }
  }
  return query.apply(this, args);
} as typeof pg.Client.prototype.query;
// amqplib's channel class (untyped module): the consumers' acks go through its ack().
// amqplib's exports map hides it: required by its file path, which is the module amqplib itself loaded.
const require = createRequire(import.meta.url);
const { Channel } = require(join(dirname(require.resolve("amqplib")), "lib/channel_model.js")) as {
  Channel: { prototype: { ack(...args: unknown[]): void } };
};
const ack = Channel.prototype.ack;
Channel.prototype.ack = function (this: unknown, ...args: unknown[]) {
  if (counting) stats.acks++;
  return ack.apply(this, args);
};

const prisma = newPrismaClient(databaseUrl);
const box = inbox<Record<string, unknown>, typeof prisma>({
  prisma,
  queue: {
    name: queue,
    bindings: [{ exchange, routingKey: "#" }],
    // rebalanceMs short so that the processes settle on their shares quickly before the bench publishes
    // (PARTITIONED_REBALANCE_MS: another value, to measure what the tick costs an idle process).
    ...(partitions > 0 ? { partitions, rebalanceMs: Number(process.env.PARTITIONED_REBALANCE_MS ?? 500) } : {}),
  },
  handlers: {
    effect: {
      pattern: "#",
      handle: (m, tx) =>
        tx.effect.create({ data: { messageId: m.messageId, handler: m.handler, payload: m.payload as object } }),
    },
  },
  logger: { info() {}, warn() {}, error: (m) => process.stderr.write(`inbox error: ${m}\n`) },
});
let handled = 0;
let first = 0;
let last = 0;
let owned = -1;
setInterval(() => {
  if (partitions > 0 && box.partitions.length !== owned) {
    owned = box.partitions.length;
    process.send!({ owned });
  }
  if (handled === 0) return;
  process.send!({ handled, first, last });
  handled = 0;
}, REPORT_MS).unref();
box.onEvent((e) => {
  if (counting && e.type === "received") {
    stats.batches++;
    stats.deliveries += e.deliveries;
  }
  if (e.type !== "handled") return;
  const at = performance.timeOrigin + performance.now();
  if (handled++ === 0) first = at;
  last = at;
});
await box.start({ databaseUrl, amqpUrl });
const profileDir = process.env.PARTITIONED_CPU_PROF;
const session = profileDir ? new Session() : undefined;
process.on("message", async (m) => {
  if (m === "measure") {
    counting = true;
    kernelAtStart = kernelCounts();
    if (session) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.start");
    }
    return;
  }
  if (m !== "stop") return;
  counting = false;
  const kernel = kernelCounts();
  for (const k of Object.keys(kernel)) kernel[k]! -= kernelAtStart[k] ?? 0;
  process.send!({ stats: { ...stats, kernel } });
  if (session) {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(join(profileDir!, `${queue}.${process.pid}.cpuprofile`), JSON.stringify(profile));
  }
  await box.stop();
  await prisma.$disconnect();
  process.exit(0);
});
process.send!("ready");
