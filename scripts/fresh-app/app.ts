// A fresh app's first declared event, run by scripts/fresh-app.sh against the packed package: a model with a BigInt
// id, a Decimal and a Bytes column publishes the JSON the README documents, through the relay and RabbitMQ.
import { randomBytes } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import amqp from "amqplib";
import { outbox, startRelay } from "prisma-outbox";
import { PrismaClient } from "./generated/client.js";

const databaseUrl = process.env.DATABASE_URL as string;
const amqpUrl = process.env.AMQP_URL as string;
const exchange = `fresh_app_${randomBytes(4).toString("hex")}`;

const base = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
const prisma = base.$extends(outbox<typeof base>({ exchange, events: { Invoice: { create: true } } }));
const relay = await startRelay({ databaseUrl, amqpUrl, exchanges: [{ name: exchange, type: "topic" }] });

const connection = await amqp.connect(amqpUrl);
const channel = await connection.createChannel();
const { queue } = await channel.assertQueue("", { exclusive: true });
await channel.bindQueue(queue, exchange, "#");
const received = new Promise<string>((resolve) => {
  void channel.consume(queue, (m) => m && resolve(m.content.toString()), { noAck: true });
});

await base.$executeRawUnsafe(`SELECT setval(pg_get_serial_sequence('"Invoice"', 'id'), 9007199254740993)`);
await prisma.invoice.create({
  data: { total: "1234.50", scan: new Uint8Array([0, 1, 254, 255]), issued: new Date("2026-11-24T08:00:00.000Z") },
});
const timeout = setTimeout(() => {
  console.error("fresh app: no message within 10 s");
  process.exit(1);
}, 10_000);
const body = await received;
clearTimeout(timeout);
const expected = '{"id":"9007199254740994","total":"1234.5","scan":"AAH+/w==","issued":"2026-11-24T08:00:00.000Z"}';
await relay.stop();
await connection.close();
await base.$disconnect();
if (body !== expected) {
  console.error(`fresh app: published ${body}\n              expected  ${expected}`);
  process.exit(1);
}
console.log(`fresh app: published ${body}`);
