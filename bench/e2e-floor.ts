// The floor under bench:inbox (e)'s latency: the round trips a message's path is made of, each timed alone at the
// case's own pace on this machine in the same run, with nothing else in flight. Their p50s summed are what the path
// would cost if our code and Prisma's took no time at all, so "ratio p50 / floor" says how much of the measured p50
// is the parts' own latency and how much is ours (and the load's).
// The path, commit -> handler commit (docs/performance.md, "End to end"):
//   the relay's claim            one round trip (BEGIN, the claim: one query; its COMMIT follows the confirm, off the path)
//   relay -> broker -> inbox     one publish and its delivery (TCP_NODELAY, as the library's connections)
//   the receiver's INSERT        one autocommit INSERT of a ~0.5 kB row: a round trip and a WAL flush
//   the handler's transaction    Prisma's $transaction: BEGIN, the handler's create, the processed-mark, COMMIT
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import amqp from "amqplib";
import type pg from "pg";
import type { PrismaClient } from "../test/support/prisma.js";
import { summarize } from "./support.js";

const SAMPLES = 300;

export interface Floor {
  parts: Array<[string, number]>;
  total: number;
}

async function paced(rate: number, fn: () => Promise<unknown>): Promise<number> {
  const interval = 1000 / rate;
  for (let i = 0; i < 20; i++) await fn(); // connections open, statements planned once
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    await fn();
    const took = performance.now() - t;
    samples.push(took);
    if (interval > took) await new Promise((r) => setTimeout(r, interval - took));
  }
  return summarize(samples).p50;
}

/** Each part's p50 at `rate` operations per second (one at a time), on the bench's database and broker. */
export async function pathFloor(pool: pg.Pool, prisma: PrismaClient, amqpUrl: string, rate: number): Promise<Floor> {
  const table = `floor_${randomUUID().replaceAll("-", "")}`;
  await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, body text NOT NULL, status text)`);
  const body = "x".repeat(500);
  const parts: Array<[string, number]> = [];
  try {
    parts.push(["round trip (the relay's claim)", await paced(rate, () => pool.query("SELECT 1"))]);
    parts.push(["broker hop (publish -> delivery)", await brokerHop(amqpUrl, rate)]);
    parts.push([
      "store (autocommit INSERT)",
      await paced(rate, () => pool.query(`INSERT INTO ${table} (body) VALUES ($1)`, [body])),
    ]);
    const { rows } = await pool.query<{ id: string }>(`INSERT INTO ${table} (body) VALUES ('') RETURNING id`);
    const mark = `UPDATE ${table} SET status = 'processed' WHERE id = $1`;
    parts.push([
      "handler transaction (Prisma: create + mark)",
      await paced(rate, () =>
        prisma.$transaction(async (tx) => {
          await tx.effect.create({ data: { messageId: randomUUID(), handler: "floor", payload: {} } });
          await tx.$executeRawUnsafe(mark, rows[0]!.id);
        }),
      ),
    ]);
  } finally {
    await pool.query(`DROP TABLE ${table}`);
    await pool.query(`DELETE FROM "Effect" WHERE handler = 'floor'`);
  }
  return { parts, total: parts.reduce((sum, [, ms]) => sum + ms, 0) };
}

async function brokerHop(amqpUrl: string, rate: number): Promise<number> {
  const publisher = await amqp.connect(amqpUrl, { noDelay: true });
  const consumer = await amqp.connect(amqpUrl, { noDelay: true });
  try {
    const out = await publisher.createConfirmChannel();
    const into = await consumer.createChannel();
    const { queue } = await into.assertQueue("", { exclusive: true });
    let arrived: (() => void) | undefined;
    await into.consume(queue, (m) => {
      if (m) into.ack(m);
      arrived?.();
    });
    const bytes = Buffer.from("x".repeat(500));
    return await paced(
      rate,
      () =>
        new Promise<void>((resolve) => {
          arrived = resolve;
          out.publish("", queue, bytes, { persistent: true, messageId: randomUUID() });
        }),
    );
  } finally {
    await publisher.close();
    await consumer.close();
  }
}
