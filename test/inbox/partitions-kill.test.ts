// Partitioned inbox queues with inbox worker processes (the bundled CLI, test/reliability/fixtures/inbox-handlers.ts):
// 3 processes share 6 partitions, one is SIGKILLed mid-stream, the two others take its partitions within the stated
// bound (docs/scaling.md#partitioned-inbox-queues), and every message is handled once, per key in publish order.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { afterAll, expect, inject, it } from "vitest";
import { declarePartitions } from "../../src/transport/amqp/partitions.js";
import { spawnInbox } from "../reliability/inbox-harness.js";
import { uniqueName } from "../support/consumer.js";
import { deletePartitions, requireHashExchange } from "../support/partitions.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import type { Proc } from "../support/process-harness.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const connection = await amqp.connect(amqpUrl);
const channel = await connection.createConfirmChannel();
await requireHashExchange(connection, uniqueName("partitions.probe"));
afterAll(async () => {
  await pool.end();
  await connection.close();
});

const PARTITIONS = 6;
const owned = (proc: Proc): number[] => {
  const line = [...proc.stdout].reverse().find((l) => l.startsWith("inbox-partitions owned="));
  const list = line?.slice("inbox-partitions owned=".length) ?? "";
  return list === "" ? [] : list.split(",").map(Number);
};

it("hands a SIGKILLed process's partitions to the others within seconds; each key in order, each message once", async () => {
  const exchange = uniqueName("partkill.x");
  const queue = uniqueName("partkill.q");
  await channel.assertExchange(exchange, "topic", { durable: true });
  try {
    await declarePartitions(amqpUrl, {
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      exchanges: [],
      partitions: PARTITIONS,
    });
    const env = { INBOX_PARTITIONS: String(PARTITIONS), INBOX_REBALANCE_MS: "500" };
    const procs = [0, 1, 2].map((n) =>
      spawnInbox({ databaseUrl, amqpUrl, queue, exchange, env, name: `part-inbox-${n}` }),
    );
    for (const p of procs) await p.waitForLine(/inbox started/, 60_000);
    // Each takes its share: 2 of 6.
    await expect.poll(() => procs.map((p) => owned(p).length), { timeout: 20_000 }).toEqual([2, 2, 2]);
    const keys = Array.from({ length: 30 }, (_, k) => `key-${k}`);
    let seq = 0;
    const publish = async (rounds: number) => {
      for (let r = 0; r < rounds; r++, seq++) {
        for (const key of keys) {
          channel.publish(exchange, "inbox.msg", Buffer.from(JSON.stringify({ i: seq, key })), {
            messageId: randomUUID(),
            persistent: true,
            headers: { "x-ordering-key": key },
          });
        }
      }
      await channel.waitForConfirms();
    };
    await publish(20);
    const victim = procs[0]!;
    victim.kill("SIGKILL");
    const { at: killedAt } = await victim.exited;
    await publish(20);
    const survivors = procs.slice(1);
    await expect.poll(() => new Set(survivors.flatMap(owned)).size, { timeout: 15_000, interval: 50 }).toBe(PARTITIONS);
    const handOverMs = Date.now() - killedAt;
    process.stdout.write(`partition hand-over after SIGKILL: ${handOverMs} ms (rebalanceMs 500)\n`);
    expect(handOverMs).toBeLessThan(5_000);
    expect(survivors.map((p) => owned(p).length)).toEqual([3, 3]);
    await publish(10);
    const total = keys.length * seq;
    const read = async () =>
      (
        await pool.query<{ key: string; seq: number; message_id: string }>(
          `SELECT payload->>'key' AS key, (payload->>'i')::int AS seq, "messageId" AS message_id FROM "Effect" ORDER BY id`,
        )
      ).rows;
    await expect
      .poll(async () => new Set((await read()).map((r) => r.message_id)).size, { timeout: 90_000 })
      .toBe(total);
    const rows = await read();
    expect(rows.length).toBe(total); // no double effect
    const byKey = new Map<string, number[]>();
    for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
    const outOfOrder = [...byKey].filter(([, s]) => !s.every((v, i) => v === i)).map(([k]) => k);
    expect(outOfOrder).toEqual([]);
  } finally {
    await deletePartitions(channel, queue, PARTITIONS + 1);
    await channel.deleteExchange(exchange).catch(() => {});
  }
}, 180_000);
