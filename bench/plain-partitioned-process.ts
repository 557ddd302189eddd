// One process of bench:inbox (p)'s plain loop (bench/inbox-partitioned.ts, PARTITIONED_BASELINE): the same kind of work
// per message as an inbox process, without the library. It consumes its share of the partition queues of argv[4]
// (partition i when i % argv[7] === argv[6]: a fixed share, no rebalancing) with amqplib, one channel per partition
// queue (prefetch 100), and for each delivery runs one Prisma interactive transaction that inserts the Effect row, then
// acks it; at most 4 transactions at once (the inbox's default concurrency). Same IPC as
// bench/inbox-partitioned-process.ts: "ready", { owned }, { handled, first, last } every 20 ms (PARTITIONED_REPORT_MS),
// "measure", "stop" -> { stats } (acks and the kernel's counts; the inbox's other counts are zero here).
import { performance } from "node:perf_hooks";
import amqp, { type ConsumeMessage } from "amqplib";
import { newPrismaClient } from "../test/support/prisma.js";
import { kernelCounts } from "./cpu.js";

const [databaseUrl, amqpUrl, queue, partitionsArg, indexArg, countArg] = process.argv.slice(2) as string[];
const partitions = Number(partitionsArg);
const index = Number(indexArg);
const count = Number(countArg);
const CONCURRENCY = 4;

const prisma = newPrismaClient(databaseUrl!);
const connection = await amqp.connect(amqpUrl!);
const queues =
  partitions > 0
    ? Array.from({ length: partitions }, (_, i) => i)
        .filter((i) => i % count === index)
        .map((i) => `${queue}.p${i}`)
    : [queue!];
let handled = 0;
let first = 0;
let last = 0;
let counting = false;
let acks = 0;
let kernelAtStart: Record<string, number> = {};
const waiting: Array<[amqp.Channel, ConsumeMessage]> = [];
let running = 0;

function next(): void {
  while (running < CONCURRENCY && waiting.length > 0) {
    const [channel, msg] = waiting.shift()!;
    running++;
    void handle(channel, msg).finally(() => {
      running--;
      next();
    });
  }
}

async function handle(channel: amqp.Channel, msg: ConsumeMessage): Promise<void> {
  const messageId = String(msg.properties.messageId);
  const payload = JSON.parse(msg.content.toString("utf8")) as object;
  await prisma.$transaction((tx) => tx.effect.create({ data: { messageId, handler: "effect", payload } }));
  channel.ack(msg);
  if (counting) acks++;
  const at = performance.timeOrigin + performance.now();
  if (handled++ === 0) first = at;
  last = at;
}

for (const name of queues) {
  const channel = await connection.createChannel();
  await channel.prefetch(100);
  await channel.consume(name, (msg) => {
    if (!msg) return;
    waiting.push([channel, msg]);
    next();
  });
}
process.send!({ owned: partitions > 0 ? queues.length : 0 });
setInterval(
  () => {
    if (handled === 0) return;
    process.send!({ handled, first, last });
    handled = 0;
  },
  Number(process.env.PARTITIONED_REPORT_MS ?? 20),
).unref();
process.on("message", async (m) => {
  if (m === "measure") {
    counting = true;
    kernelAtStart = kernelCounts();
    return;
  }
  if (m !== "stop") return;
  counting = false;
  const kernel = kernelCounts();
  for (const k of Object.keys(kernel)) kernel[k]! -= kernelAtStart[k] ?? 0;
  const claimed = { due: 0, dueEmpty: 0, byIds: 0, byIdsEmpty: 0 };
  process.send!({ stats: { batches: 0, deliveries: 0, acks, statements: {}, claimed, kernel } });
  await connection.close();
  await prisma.$disconnect();
  process.exit(0);
});
process.send!("ready");
