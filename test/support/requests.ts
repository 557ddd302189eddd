// What the request-reply tests against PostgreSQL and RabbitMQ start with: the file's database (its tables in
// `schema` when given), the app's Prisma client with the outbox handing off to an in-process queue, requests() on
// it, and a topic exchange on a channel of the file's own. Each file closes them in its own hooks (its relays and
// inboxes stop first).
import amqp from "amqplib";
import { inject } from "vitest";
import { OutboxQueue, outbox, requests } from "../../src/index.js";
import { uniqueName } from "./consumer.js";
import { migrateIntoSchema } from "./database.js";
import { quiet } from "./logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "./prisma.js";

export async function useRequests(prefix: string, schema?: string) {
  const amqpUrl = inject("amqpUrl");
  const databaseUrl = await useTestDatabase();
  if (schema) await migrateIntoSchema(databaseUrl, schema);
  const inSchema = schema ? { schema } : {};
  const pool = newPool(databaseUrl);
  const base = newPrismaClient(databaseUrl);
  const exchange = uniqueName(`${prefix}.x`);
  const handoff = new OutboxQueue();
  const prisma = base.$extends(outbox<typeof base>({ exchange, ...inSchema, queue: handoff }));
  const reqs = requests<typeof prisma>({ prisma, exchange, ...inSchema, logger: quiet, cancelCheckIntervalMs: 50 });
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: false });
  return { amqpUrl, databaseUrl, pool, base, exchange, handoff, prisma, reqs, connection, channel };
}
