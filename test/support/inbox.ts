// What the inbox tests against RabbitMQ share: one confirm channel for the file, a fresh exchange and queue per test
// (deleted after it), and every inbox of a test stopped after it.
import amqp from "amqplib";
import { afterAll, afterEach } from "vitest";
import { uniqueName } from "./consumer.js";

/**
 * Opens the file's channel and registers the hooks: after each test, every tracked inbox stops, then the deferred
 * cleanups run (exchanges and queues deleted); after the file, the connection closes.
 */
export async function useInboxBroker(amqpUrl: string) {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createConfirmChannel();
  const running: Array<{ stop(): Promise<unknown> }> = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((b) => b.stop()));
    await Promise.all(cleanups.splice(0).map((c) => c()));
  });
  afterAll(() => connection.close());
  return {
    connection,
    channel,
    /** Stops `box` after the test. */
    track<T extends { stop(): Promise<unknown> }>(box: T): T {
      running.push(box);
      return box;
    },
    /** Runs `cleanup` after the test, once its inboxes stopped. */
    defer(cleanup: () => Promise<unknown>): void {
      cleanups.push(cleanup);
    },
    /** A new topic exchange and a queue name (not declared: the inbox declares it), both deleted after the test. */
    async exchangeAndQueue(prefix: string, queue = uniqueName(`${prefix}.q`)) {
      const exchange = uniqueName(`${prefix}.x`);
      await channel.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
      cleanups.push(async () => {
        await channel.deleteQueue(queue).catch(() => {});
        await channel.deleteExchange(exchange).catch(() => {});
      });
      return { exchange, queue };
    },
  };
}

/** What an Effect row is written with: a Prisma client or transaction client of the example app. */
interface EffectWriter {
  effect: { create(args: { data: { messageId: string; handler: string; payload: any } }): PromiseLike<unknown> };
}

/** A handler's one write in these tests: an Effect row naming the message and the handler, with its payload. */
export async function recordEffect(
  tx: EffectWriter,
  message: { messageId: string; payload: unknown },
  handler: string,
): Promise<void> {
  await tx.effect.create({ data: { messageId: message.messageId, handler, payload: message.payload } });
}
