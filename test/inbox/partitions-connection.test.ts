// Partitioned inbox queues, what one process does with its partitions, against RabbitMQ and PostgreSQL
// (docs/scaling.md#partitioned-inbox-queues):
// - it consumes all of them on one AMQP connection (a channel each), and after that connection is cut it comes back
//   on one connection again, with every partition consumed and each key still in order;
// - a partition it gives back (another process joined) is handed over only once its deliveries are stored and acked:
//   the new owner receives none of them again (src/inbox/partitions.ts #release).
import { randomUUID } from "node:crypto";
import { afterAll, expect, inject, it } from "vitest";
import { type Inbox, inbox } from "../../src/index.js";
import { useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { deletePartitions, keyedEffectHandler, requireHashExchange } from "../support/partitions.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { startTcpProxy } from "../support/tcp-proxy.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { connection, channel, track, defer, exchangeAndQueue } = await useInboxBroker(amqpUrl);
await requireHashExchange(connection, `partitions.probe.${randomUUID()}`);
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

type Messages = { "order.event": { key: string; seq: number } };

async function setUp(partitions: number) {
  const { exchange, queue } = await exchangeAndQueue("partconn");
  defer(() => deletePartitions(channel, queue, partitions + 1));
  const received = { deliveries: 0, duplicates: 0 };
  const make = () => {
    const box = track(
      inbox<Messages, typeof prisma>({
        prisma,
        queue: { name: queue, bindings: [{ exchange, routingKey: "#" }], partitions, rebalanceMs: 200 },
        handlers: { effect: keyedEffectHandler(queue) },
        sweepIntervalMs: 100,
        logger: quiet,
      }),
    );
    box.onEvent((e) => {
      if (e.type !== "received") return;
      received.deliveries += e.deliveries;
      received.duplicates += e.duplicates;
    });
    return box;
  };
  let seq = 0;
  const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
  /** n messages for each key, in sequence. */
  const round = async (n: number) => {
    for (let i = 0; i < n; i++, seq++) {
      for (const key of keys) {
        channel.publish(exchange, "order.event", Buffer.from(JSON.stringify({ key, seq })), {
          messageId: randomUUID(),
          headers: { "x-ordering-key": key },
        });
      }
    }
    await channel.waitForConfirms();
  };
  /** Handled sequence numbers per key, in the commit order of the handlers' transactions. */
  const handled = async () => {
    const { rows } = await pool.query<{ key: string; seq: number }>(
      `SELECT handler AS key, (payload->>'seq')::int AS seq FROM "Effect" WHERE handler LIKE $1 ORDER BY id`,
      [`${queue}:%`],
    );
    const out = new Map<string, number[]>();
    for (const r of rows) out.set(r.key, [...(out.get(r.key) ?? []), r.seq]);
    return out;
  };
  const count = async () => [...(await handled()).values()].reduce((n, s) => n + s.length, 0);
  return { make, round, handled, count, received, total: () => seq * keys.length };
}

const inOrder = (seqs: number[]) => seqs.every((s, i) => s === i);

it("consumes all its partitions on one connection, and on one again after that connection is cut", async () => {
  const proxy = await startTcpProxy({
    targetHost: new URL(amqpUrl).hostname,
    targetPort: Number(new URL(amqpUrl).port || 5672),
  });
  defer(() => proxy.close());
  const { make, round, handled, count, total } = await setUp(6);
  const box: Inbox = make();
  await box.start({ databaseUrl, amqpUrl: proxy.url(amqpUrl) });
  expect(box.partitions).toEqual([0, 1, 2, 3, 4, 5]);
  // The declaration's own connection closes after start(); what stays is the consumers'.
  await expect.poll(() => proxy.connections, { timeout: 10_000 }).toBe(1);
  await round(5);
  await expect.poll(count, { timeout: 30_000 }).toBe(total());
  proxy.cut();
  await round(5);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  proxy.restore();
  await round(5);
  await expect.poll(count, { timeout: 60_000 }).toBe(total());
  expect([...(await handled()).values()].filter((s) => !inOrder(s))).toEqual([]);
  expect(box.partitions).toEqual([0, 1, 2, 3, 4, 5]);
  await expect.poll(() => proxy.connections, { timeout: 10_000 }).toBe(1);
});

it("gives a partition back only once its deliveries are stored and acked: the next owner receives none again", async () => {
  const { make, round, handled, count, total, received } = await setUp(4);
  const first = make();
  await first.start({ databaseUrl, amqpUrl });
  expect(first.partitions).toEqual([0, 1, 2, 3]);
  await round(2);
  await expect.poll(count, { timeout: 30_000 }).toBe(total());
  // Inserts into the inbox table wait while this lock is held: what `first` receives now stays unstored and unacked
  // when the joiner makes it give two partitions back.
  const locker = await pool.connect();
  await locker.query("BEGIN");
  await locker.query("LOCK TABLE inbox_message IN SHARE MODE");
  let unlocked = false;
  const unlock = async () => {
    if (unlocked) return;
    unlocked = true;
    await locker.query("COMMIT");
    locker.release();
  };
  defer(unlock);
  await round(10);
  const joiner = make();
  await joiner.start({ databaseUrl, amqpUrl });
  // `first` has seen the joiner and is giving back two partitions (cancelled, waiting for their deliveries).
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  await unlock();
  await expect.poll(() => joiner.partitions.length, { timeout: 15_000 }).toBe(2);
  expect(first.partitions.length).toBe(2);
  await round(5);
  await expect.poll(count, { timeout: 60_000 }).toBe(total());
  expect([...(await handled()).values()].filter((s) => !inOrder(s))).toEqual([]);
  // Every message was received once: nothing of the given-back partitions came again to the joiner.
  expect(received).toEqual({ deliveries: total(), duplicates: 0 });
});
