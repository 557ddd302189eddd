// A service that reacts to orders: prints every message the worker publishes to exchange `shop` under `order.#`.
//   AMQP_URL=amqp://... node --import tsx examples/consumer.ts
import amqp from "amqplib";

const amqpUrl = process.env.AMQP_URL;
if (!amqpUrl) {
  console.error("Usage: AMQP_URL=amqp://user:password@host:5672 consumer.ts");
  process.exit(2);
}

const connection = await amqp.connect(amqpUrl).catch((error: Error) => {
  console.error(`consumer: cannot connect to RabbitMQ: ${error.message}`);
  process.exit(1);
});
let stopping = false;
connection.on("error", (error: Error) => console.error(`consumer: ${error.message}`));
connection.on("close", () => {
  if (stopping) return;
  console.error("consumer: lost the connection to RabbitMQ");
  process.exit(1);
});

const channel = await connection.createChannel();
// Declared exactly as the worker declares it (OUTBOX_EXCHANGES=shop:topic), so whichever starts first creates it.
await channel.assertExchange("shop", "topic", { durable: true });
// A queue of our own that goes away with this process: enough for a demo. A real service declares a durable, named
// queue, so that messages wait for it while it is down.
const { queue } = await channel.assertQueue("", { exclusive: true });
await channel.bindQueue(queue, "shop", "order.#");

await channel.consume(queue, (message) => {
  if (!message) return;
  // Delivery is at least once (a worker may crash between publishing and deleting the row): this consumer prints a
  // redelivered message again. A handler with effects runs in an inbox instead (billing-handlers.ts), which stores
  // each message id once and acks only once it is stored.
  console.log(`${message.fields.routingKey} ${message.properties.messageId} ${message.content.toString()}`);
  channel.ack(message);
});
console.log("consumer ready: listening on exchange shop for order.#");

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    stopping = true;
    await connection.close();
    console.log(`consumer stopped (${signal})`);
  });
}
