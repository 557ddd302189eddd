// The consuming side of bench/e2e-bare.ts in a process of its own: argv database URL, AMQP URL, queue, shape. Sends
// "ready" once consuming, then each handled message as [messageId, wall-clock ms after its COMMIT] over IPC, in
// batches (as bench/inbox-process.ts); "stop" stops it.
import { newPrismaClient } from "../test/support/prisma.js";
import { type BareShape, bareConsumer } from "./e2e-bare.js";

const [databaseUrl, amqpUrl, queue, shape] = process.argv.slice(2) as [string, string, string, BareShape];
const prisma = newPrismaClient(databaseUrl);
let pending: Array<[string, number]> = [];
const flush = () => {
  if (pending.length > 0) process.send!(pending);
  pending = [];
};
setInterval(flush, 5).unref();
const stop = await bareConsumer(prisma, databaseUrl, amqpUrl, queue, shape, (id, at) => pending.push([id, at]));
process.on("message", async (m) => {
  if (m !== "stop") return;
  await stop();
  flush();
  await prisma.$disconnect();
  process.exit(0);
});
process.send!("ready");
