// One inbox process of bench:inbox (p) (bench/inbox-partitioned.ts): an inbox on the queue argv[4], bound to the
// exchange argv[3], partitioned into argv[5] partitions (0: a plain queue), with a handler doing one Prisma insert.
// Over IPC: "ready" once started; { owned } (how many partitions it consumes) on each change; { handled, first, last }
// (a count and the wall-clock ms of the first and last "handled" events since the previous report) every 20 ms;
// "stop" stops it.
import { performance } from "node:perf_hooks";
import { inbox } from "../src/index.js";
import { newPrismaClient } from "../test/support/prisma.js";

const [databaseUrl, amqpUrl, exchange, queue, partitionsArg] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const partitions = Number(partitionsArg);
const prisma = newPrismaClient(databaseUrl);
const box = inbox<Record<string, unknown>, typeof prisma>({
  prisma,
  queue: {
    name: queue,
    bindings: [{ exchange, routingKey: "#" }],
    // rebalanceMs short so that the processes settle on their shares quickly before the bench publishes.
    ...(partitions > 0 ? { partitions, rebalanceMs: 500 } : {}),
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
}, 20).unref();
box.onEvent((e) => {
  if (e.type !== "handled") return;
  const at = performance.timeOrigin + performance.now();
  if (handled++ === 0) first = at;
  last = at;
});
await box.start({ databaseUrl, amqpUrl });
process.on("message", async (m) => {
  if (m !== "stop") return;
  await box.stop();
  await prisma.$disconnect();
  process.exit(0);
});
process.send!("ready");
