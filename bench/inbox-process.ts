// The consuming app of bench:inbox (e), in a process of its own: an inbox on the queue given as argv[4], bound to the
// exchange argv[3], with a handler doing one Prisma insert. Sends "ready" once started, then reports each handled
// message as [messageId, wall-clock ms after its COMMIT] over IPC, in batches; "stop" stops it.
import { performance } from "node:perf_hooks";
import { inbox } from "../src/index.js";
import { newPrismaClient } from "../test/support/prisma.js";

const [databaseUrl, amqpUrl, exchange, queue] = process.argv.slice(2) as [string, string, string, string];
const prisma = newPrismaClient(databaseUrl);
type Messages = { "bench.e2e": { i: number; writtenAt: number } };
const box = inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
  exchanges: [{ name: exchange, type: "topic" }],
  handlers: {
    effect: {
      on: "bench.e2e",
      handle: (m, tx) => tx.effect.create({ data: { messageId: m.messageId, handler: m.handler, payload: m.payload } }),
    },
  },
  logger: { info() {}, warn() {}, error: (m) => process.stderr.write(`inbox error: ${m}\n`) },
});
let pending: Array<[string, number]> = [];
const flush = () => {
  if (pending.length > 0) process.send!(pending);
  pending = [];
};
setInterval(flush, 5).unref();
box.onEvent((e) => {
  if (e.type === "handled") pending.push([e.messageId, performance.timeOrigin + performance.now()]);
});
await box.start({ databaseUrl, amqpUrl });
process.on("message", async (m) => {
  if (m !== "stop") return;
  await box.stop();
  flush();
  await prisma.$disconnect();
  process.exit(0);
});
process.send!("ready");
