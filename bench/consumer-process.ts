// A consumer in a process of its own, so that counting arrivals never slows the process being measured. It binds a
// fresh queue to the exchange given as argv[2], sends "ready", then reports arrivals as [messageId, wall-clock ms]
// pairs in batches over IPC; "stop" ends it.
import { performance } from "node:perf_hooks";
import amqp from "amqplib";

const [amqpUrl, exchange] = process.argv.slice(2) as [string, string];
const connection = await amqp.connect(amqpUrl);
const channel = await connection.createChannel();
await channel.assertExchange(exchange, "topic", { durable: true });
const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
await channel.bindQueue(queue, exchange, "#");
let pending: Array<[string, number]> = [];
const flush = () => {
  if (pending.length > 0) process.send!(pending);
  pending = [];
};
setInterval(flush, 5).unref();
await channel.consume(
  queue,
  (msg) => {
    if (!msg) return;
    // High-resolution wall-clock time, comparable with the writer process's.
    pending.push([String(msg.properties.messageId), performance.timeOrigin + performance.now()]);
    if (pending.length >= 2_000) flush();
  },
  { noAck: true },
);
process.on("message", async (m) => {
  if (m !== "stop") return;
  flush();
  await connection.close();
  process.exit(0);
});
process.send!("ready");
