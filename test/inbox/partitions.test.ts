// Partitioned inbox queues against RabbitMQ and PostgreSQL (docs/scaling.md#partitioned-inbox-queues): keys hash to
// one partition each; single active consumer alone gives every partition to the first process (measured); with the
// advisory-lock coordination K inboxes each consume about N/K partitions, a stopped one's are taken within the stated
// bound, a joining one takes its share, per-key order holds in the handlers' effects; another count is refused;
// quorum partition queues work.
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type Inbox, InboxPartitionsError, inbox } from "../../src/index.js";
import { declarePartitions } from "../../src/transport/amqp/partitions.js";
import { useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { deletePartitions, keyedEffectHandler, requireHashExchange } from "../support/partitions.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

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

async function setUp(partitions: number, args: Record<string, unknown> = {}) {
  const { exchange, queue } = await exchangeAndQueue("part");
  defer(() => deletePartitions(channel, queue, partitions + 1));
  const make = (count = partitions) =>
    track(
      inbox<Messages, typeof prisma>({
        prisma,
        queue: {
          name: queue,
          arguments: args,
          bindings: [{ exchange, routingKey: "#" }],
          partitions: count,
          rebalanceMs: 200,
        },
        handlers: { effect: keyedEffectHandler(queue) },
        sweepIntervalMs: 100,
        logger: quiet,
      }),
    );
  const publish = (key: string, seq: number) =>
    channel.publish(exchange, "order.event", Buffer.from(JSON.stringify({ key, seq })), {
      messageId: randomUUID(),
      headers: { "x-ordering-key": key },
    });
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
  return { exchange, queue, make, publish, handled };
}

const start = (box: Inbox) => box.start({ databaseUrl, amqpUrl });
const inOrder = (seqs: number[]) => seqs.every((s, i) => s === i);

describe("partitioned inbox queues", () => {
  it("routes each key to one partition and spreads the keys", async () => {
    const { exchange, queue } = await setUp(4);
    defer(() => deletePartitions(channel, queue, 5));
    await declarePartitions(amqpUrl, {
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      exchanges: [],
      partitions: 4,
    });
    for (let k = 0; k < 40; k++)
      for (let s = 0; s < 3; s++) {
        channel.publish(exchange, "order.event", Buffer.from("{}"), {
          messageId: randomUUID(),
          headers: { "x-ordering-key": `k${k}` },
        });
      }
    await channel.waitForConfirms();
    const partitionOf = new Map<string, Set<number>>();
    const counts: number[] = [];
    for (let p = 0; p < 4; p++) {
      await expect
        .poll(async () => (await channel.checkQueue(`${queue}.p${p}`)).messageCount, { timeout: 10_000 })
        .toBeGreaterThan(0);
      let n = 0;
      for (
        let m = await channel.get(`${queue}.p${p}`, { noAck: true });
        m;
        m = await channel.get(`${queue}.p${p}`, { noAck: true })
      ) {
        const key = String(m.properties.headers?.["x-ordering-key"]);
        partitionOf.set(key, (partitionOf.get(key) ?? new Set()).add(p));
        n++;
      }
      counts.push(n);
    }
    expect(counts.reduce((a, b) => a + b)).toBe(120);
    expect([...partitionOf.values()].every((set) => set.size === 1)).toBe(true);
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });

  it("single active consumer alone gives every partition to the first process to register (measured)", async () => {
    const { exchange, queue } = await setUp(4);
    await declarePartitions(amqpUrl, {
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      exchanges: [],
      partitions: 4,
    });
    const channels = await Promise.all([0, 1, 2].map(() => connection.createChannel()));
    const got = [0, 0, 0];
    for (const [i, ch] of channels.entries()) {
      for (let p = 0; p < 4; p++)
        await ch.consume(`${queue}.p${p}`, (m) => {
          if (!m) return;
          got[i]!++;
          ch.ack(m);
        });
    }
    for (let k = 0; k < 100; k++) {
      channel.publish(exchange, "order.event", Buffer.from("{}"), {
        messageId: randomUUID(),
        headers: { "x-ordering-key": `k${k}` },
      });
    }
    await expect.poll(() => got.reduce((a, b) => a + b), { timeout: 10_000 }).toBe(100);
    expect(got).toEqual([100, 0, 0]);
    await Promise.all(channels.map((ch) => ch.close()));
  });

  it("shares the partitions among 3 inboxes, hands a stopped one's over, gives a joiner its share, keeps per-key order", async () => {
    const { make, publish, handled } = await setUp(8);
    const boxes = [make(), make(), make()];
    for (const box of boxes) await start(box);
    // Sorted: arrayContaining would ignore how many times a share occurs ([3, 2, 1] while still converging).
    const shares = () => boxes.map((b) => b.partitions.length).sort();
    await expect.poll(shares, { timeout: 15_000 }).toEqual([2, 3, 3]);
    expect(new Set(boxes.flatMap((b) => b.partitions)).size).toBe(8);
    let seq = 0;
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    const round = async (n: number) => {
      for (let i = 0; i < n; i++, seq++) for (const key of keys) publish(key, seq);
      await channel.waitForConfirms();
    };
    await round(10);
    // One stops mid-stream: the two others take its partitions within the bound (rebalanceMs 200 + a start).
    const stopping = boxes[0]!.stop();
    await round(10);
    await stopping;
    const stoppedAt = Date.now();
    await expect.poll(() => boxes[1]!.partitions.length + boxes[2]!.partitions.length, { timeout: 10_000 }).toBe(8);
    const handOverMs = Date.now() - stoppedAt;
    expect(handOverMs).toBeLessThan(5_000);
    // A new one joins: it takes its share (ceil(8/3) at most; the others give theirs back).
    const joiner = make();
    boxes.push(joiner);
    await start(joiner);
    await round(10);
    await expect.poll(() => joiner.partitions.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(() => boxes.slice(1).reduce((n, b) => n + b.partitions.length, 0), { timeout: 15_000 }).toBe(8);
    await expect
      .poll(async () => [...(await handled()).values()].reduce((n, s) => n + s.length, 0), { timeout: 60_000 })
      .toBe(20 * 30);
    const byKey = await handled();
    expect([...byKey.values()].filter((s) => !inOrder(s))).toEqual([]);
  });

  it("refuses another partition count than the broker's", async () => {
    const { make } = await setUp(4);
    await start(make(4));
    await expect(start(make(5))).rejects.toThrow(InboxPartitionsError);
    await expect(start(make(3))).rejects.toThrow(/declared with 3 partitions, but RabbitMQ has more/);
  });

  it("works with quorum partition queues (delivery limit and dead letters as the broker-side poison defence)", async () => {
    const { make, publish, handled } = await setUp(3, { "x-queue-type": "quorum", "x-delivery-limit": 20 });
    const box = make();
    await start(box);
    expect(box.partitions).toEqual([0, 1, 2]);
    for (let s = 0; s < 5; s++) for (const key of ["a", "b", "c", "d"]) publish(key, s);
    await channel.waitForConfirms();
    await expect
      .poll(async () => [...(await handled()).values()].reduce((n, s) => n + s.length, 0), { timeout: 30_000 })
      .toBe(20);
    expect([...(await handled()).values()].map(inOrder)).toEqual([true, true, true, true]);
  });
});
