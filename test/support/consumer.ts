// A RabbitMQ consumer that counts arrivals by message id, so that "lost" and "duplicate" are exact.
import { randomBytes } from "node:crypto";
import amqp from "amqplib";

export interface Arrival {
  messageId: string;
  routingKey: string;
  body: string;
  properties: amqp.MessageProperties;
  at: number;
}

export function uniqueName(prefix: string): string {
  return `${prefix}.${randomBytes(4).toString("hex")}`;
}

/** Declares `exchange` (topic) and an exclusive queue bound to it with `#`, and counts what arrives. */
export async function startCountingConsumer(amqpUrl: string, exchange: string, bindingKey = "#") {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: true });
  const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, exchange, bindingKey);
  const counts = new Map<string, number>();
  const arrivals: Arrival[] = [];
  const waiters = new Set<() => void>();
  await channel.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const messageId = String(msg.properties.messageId);
      counts.set(messageId, (counts.get(messageId) ?? 0) + 1);
      arrivals.push({
        messageId,
        routingKey: msg.fields.routingKey,
        body: msg.content.toString(),
        properties: msg.properties,
        at: Date.now(),
      });
      for (const w of waiters) w();
    },
    { noAck: true },
  );
  return {
    exchange,
    counts,
    arrivals,
    /** Distinct message ids received. */
    get distinct() {
      return counts.size;
    },
    get duplicates() {
      let d = 0;
      for (const c of counts.values()) d += c - 1;
      return d;
    },
    /** Resolves when `n` distinct ids arrived; rejects after `timeoutMs` with how many did. */
    waitForDistinct(n: number, timeoutMs = 30_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (counts.size >= n) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`waited ${timeoutMs} ms for ${n} distinct messages, got ${counts.size}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}
