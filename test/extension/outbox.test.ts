import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  OutboxBatchTransactionError,
  OutboxConfigError,
  OutboxMessageError,
  OutboxPayloadError,
  OutboxQueue,
  outbox,
} from "../../src/index.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const queue = new OutboxQueue({ concurrency: 1 });
const handed: string[][] = [];
queue.attach(async (ids) => {
  handed.push(ids);
});

const prisma = base.$extends(
  outbox<typeof base>({
    exchange: "shop",
    queue,
    maxPayloadBytes: 10_000,
    events: {
      Order: {
        create: true,
        update: "order.changed",
        upsert: true,
        delete: (order) => ({ routingKey: "order.deleted", payload: { id: order.id, number: order.number } }),
        createManyAndReturn: true,
        updateManyAndReturn: (order) => (order.status === "skip" ? null : { routingKey: "order.bulk", payload: order }),
      },
    },
  }),
);

type Row = {
  id: string;
  message_id: string;
  exchange: string;
  routing_key: string;
  payload: unknown;
  headers: unknown;
  type: string | null;
  correlation_id: string | null;
  attempts: number;
};
async function rows(): Promise<Row[]> {
  return (
    await pool.query<Row>(
      "SELECT id::text, message_id::text, exchange, routing_key, payload, headers, type, correlation_id, attempts FROM outbox_message ORDER BY outbox_message.id",
    )
  ).rows;
}
async function orderCount(): Promise<number> {
  return Number((await pool.query('SELECT count(*) FROM "Order"')).rows[0].count);
}
/** Lets the queue's consumer run: hand-off is synchronous, the consumer runs on the next ticks. */
async function settled() {
  await new Promise((r) => setTimeout(r, 5));
  await queue.onIdle();
}
const handedIds = () => handed.flat();

beforeEach(async () => {
  await pool.query('TRUNCATE outbox_message, "Order", "Customer" RESTART IDENTITY CASCADE');
  handed.length = 0;
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe("$enqueue", () => {
  it("outside a transaction commits on its own and hands the id over", async () => {
    const [messageId] = await prisma.$enqueue({
      routingKey: "a.b",
      payload: { n: 1, s: "é" },
      headers: { h: "v", k: 2 },
      type: "t",
      correlationId: "c",
    });
    const all = await rows();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({
      message_id: messageId,
      exchange: "shop",
      routing_key: "a.b",
      payload: { n: 1, s: "é" },
      headers: { h: "v", k: 2 },
      type: "t",
      correlation_id: "c",
      attempts: 0,
    });
    await settled();
    expect(handedIds()).toEqual([all[0]!.id]);
  });

  it("writes many messages in one INSERT, in order, keeping given message ids", async () => {
    const given = "0190a6e5-0000-7000-8000-000000000001";
    const ids = await prisma.$enqueue([
      { routingKey: "k", payload: 0, messageId: given },
      ...Array.from({ length: 99 }, (_, i) => ({ exchange: "other", routingKey: "k", payload: i + 1 })),
    ]);
    expect(ids).toHaveLength(100);
    expect(ids[0]).toBe(given);
    const all = await rows();
    expect(all.map((r) => r.payload)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(all.map((r) => r.message_id)).toEqual(ids);
    await settled();
    expect(handedIds()).toEqual(all.map((r) => r.id));
  });

  it("inside an interactive transaction commits with it, and hands over only after COMMIT", async () => {
    let seenInside: string[] = [];
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: "1", amount: 5 } });
      await tx.$enqueue({ routingKey: "x", payload: null });
      await settled();
      seenInside = handedIds();
    });
    expect(seenInside).toEqual([]);
    const all = await rows();
    expect(all.map((r) => r.routing_key)).toEqual(["order.created", "x"]);
    await settled();
    expect(handed).toEqual([all.map((r) => r.id)]);
  });

  it("rolls back with its transaction and hands nothing over", async () => {
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.$enqueue({ routingKey: "x", payload: 1 });
        await tx.order.create({ data: { number: "1", amount: 5 } });
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await rows()).toEqual([]);
    expect(await orderCount()).toBe(0);
    await settled();
    expect(handed).toEqual([]);
  });

  it("joins nested transactions: a rolled-back savepoint loses its messages, the rest commit once", async () => {
    await prisma.$transaction(async (tx) => {
      await tx.$enqueue({ routingKey: "outer", payload: 1 });
      await tx.$transaction(async (inner) => {
        await inner.$enqueue({ routingKey: "inner-kept", payload: 2 });
      });
      await expect(
        tx.$transaction(async (inner) => {
          await inner.$enqueue({ routingKey: "inner-dropped", payload: 3 });
          throw new Error("inner");
        }),
      ).rejects.toThrow("inner");
      await settled();
      expect(handed).toEqual([]);
    });
    const all = await rows();
    expect(all.map((r) => r.routing_key)).toEqual(["outer", "inner-kept"]);
    await settled();
    // Ids of the rolled-back savepoint may be handed over too: a relay finds no row for them and publishes nothing.
    expect(handedIds()).toEqual(expect.arrayContaining(all.map((r) => r.id)));
    expect(handed).toHaveLength(1);
  });
});

describe("declared events", () => {
  it("create outside a transaction: the model row and its message commit together", async () => {
    const order = await prisma.order.create({ data: { number: "A-1", amount: 10 } });
    const all = await rows();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ exchange: "shop", routing_key: "order.created", payload: { ...order } });
    await settled();
    expect(handedIds()).toEqual([all[0]!.id]);
  });

  it("a failing model write (unique violation) outside a transaction leaves no message", async () => {
    await prisma.order.create({ data: { number: "dup", amount: 1 } });
    await expect(prisma.order.create({ data: { number: "dup", amount: 2 } })).rejects.toMatchObject({ code: "P2002" });
    expect((await rows()).map((r) => r.routing_key)).toEqual(["order.created"]);
    expect(await orderCount()).toBe(1);
  });

  it("a unique violation inside a transaction rolls back every write of it", async () => {
    await prisma.order.create({ data: { number: "dup", amount: 1 } });
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { number: "fresh", amount: 1 } });
        await tx.order.create({ data: { number: "dup", amount: 2 } });
      }),
    ).rejects.toMatchObject({ code: "P2002" });
    expect(await rows()).toHaveLength(1);
    expect(await orderCount()).toBe(1);
  });

  it("update, upsert, delete, createManyAndReturn and updateManyAndReturn", async () => {
    const o = await prisma.order.create({ data: { number: "1", amount: 1 } });
    await prisma.order.update({ where: { id: o.id }, data: { amount: 2 } });
    await prisma.order.upsert({ where: { number: "2" }, create: { number: "2", amount: 3 }, update: {} });
    await prisma.order.createManyAndReturn({
      data: [
        { number: "3", amount: 1 },
        { number: "4", amount: 1 },
      ],
    });
    await prisma.order.updateManyAndReturn({ where: { number: { in: ["3", "4"] } }, data: { status: "bulk" } });
    await prisma.order.updateManyAndReturn({ where: { number: "3" }, data: { status: "skip" } });
    await prisma.order.delete({ where: { id: o.id } });
    // Count-returning operations are not declared and write no message.
    await prisma.order.updateMany({ data: { amount: 9 } });
    const keys = (await rows()).map((r) => r.routing_key);
    expect(keys).toEqual([
      "order.created",
      "order.changed",
      "order.upserted",
      "order.created",
      "order.created",
      "order.bulk",
      "order.bulk",
      "order.deleted",
    ]);
    const deleted = (await rows()).at(-1)!;
    expect(deleted.payload).toEqual({ id: o.id, number: "1" });
  });

  it("inside a batch $transaction([...]) is refused before anything is written", async () => {
    await expect(
      prisma.$transaction([
        prisma.customer.create({ data: { email: "a@b.c" } }),
        prisma.order.create({ data: { number: "b", amount: 1 } }),
      ]),
    ).rejects.toBeInstanceOf(OutboxBatchTransactionError);
    expect(await rows()).toEqual([]);
    expect(await orderCount()).toBe(0);
    expect(Number((await pool.query('SELECT count(*) FROM "Customer"')).rows[0].count)).toBe(0);
    // Operations without declared events still work in batches.
    await prisma.$transaction([prisma.customer.create({ data: { email: "a@b.c" } }), prisma.order.count()]);
  });

  it("$enqueue inside a batch $transaction([...]) is refused the same way, before anything is written", async () => {
    for (const batch of [
      () => [prisma.customer.create({ data: { email: "a@b.c" } }), prisma.$enqueue({ routingKey: "k", payload: 1 })],
      () => [prisma.$enqueue([{ routingKey: "k", payload: 1 }]), prisma.customer.create({ data: { email: "a@b.c" } })],
    ]) {
      const error = await prisma.$transaction(batch() as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OutboxBatchTransactionError);
      expect(String(error)).toMatch(/\$enqueue cannot run in a batch \$transaction.*interactive transaction/);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(await rows()).toEqual([]);
    expect(Number((await pool.query('SELECT count(*) FROM "Customer"')).rows[0].count)).toBe(0);
    expect(handedIds()).toEqual([]);
  });

  it("$enqueue starts on its own when not awaited at once, like a promise", async () => {
    const pending = prisma.$enqueue({ routingKey: "k", payload: 1 });
    await new Promise((r) => setTimeout(r, 100));
    expect(await rows()).toHaveLength(1);
    expect(await pending).toHaveLength(1);
    expect(await rows()).toHaveLength(1); // awaiting does not write again
  });

  it("many concurrent transactions: every committed message once, none of a rolled-back one", async () => {
    const n = 60;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        prisma.$transaction(async (tx) => {
          await tx.order.create({ data: { number: `c${i}`, amount: i } });
          await tx.$enqueue({ routingKey: `extra.${i}`, payload: i });
          if (i % 3 === 0) throw new Error(`rollback ${i}`);
        }),
      ),
    );
    const committed = results.map((r, i) => (r.status === "fulfilled" ? i : -1)).filter((i) => i >= 0);
    expect(committed).toHaveLength(n - Math.ceil(n / 3));
    const all = await rows();
    expect(all.map((r) => r.routing_key).sort()).toEqual(
      committed.flatMap((i) => ["order.created", `extra.${i}`]).sort(),
    );
    expect(new Set(all.map((r) => r.message_id)).size).toBe(all.length);
    await settled();
    const ids = handedIds();
    expect(ids.slice().sort()).toEqual(all.map((r) => r.id).sort());
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("bad input", () => {
  const bad: Array<[string, unknown, new (...a: any[]) => Error, RegExp]> = [
    ["a BigInt", { v: 1n }, OutboxPayloadError, /\$\.v is a BigInt/],
    ["a function", { f: () => 1 }, OutboxPayloadError, /\$\.f is a function/],
    ["undefined at top level", undefined, OutboxPayloadError, /\$ is undefined/],
    ["NaN", [1, Number.NaN], OutboxPayloadError, /\$\[1\] is NaN/],
    ["a Map", { m: new Map() }, OutboxPayloadError, /\$\.m is Map/],
    ["too large", "x".repeat(20_000), OutboxPayloadError, /above the limit of 10000/],
  ];
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  bad.push(["a circular structure", circular, OutboxPayloadError, /circular reference at \$\.self/]);

  it.each(bad)("a payload with %s is refused, and the transaction rolls back", async (_, payload, type, message) => {
    const attempt = prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: "1", amount: 1 } });
      await tx.$enqueue({ routingKey: "k", payload });
    });
    await expect(attempt).rejects.toBeInstanceOf(type);
    await expect(attempt).rejects.toThrow(message);
    expect(await rows()).toEqual([]);
    expect(await orderCount()).toBe(0);
  });

  it.each([
    ["an empty exchange", { exchange: "", routingKey: "k", payload: 1 }, /`exchange`.*non-empty/],
    ["an over-long exchange", { exchange: "e".repeat(256), routingKey: "k", payload: 1 }, /at most 255 bytes/],
    ["an empty routing key", { routingKey: "", payload: 1 }, /`routingKey`.*non-empty/],
    ["an over-long routing key (bytes, not chars)", { routingKey: "é".repeat(128), payload: 1 }, /256 bytes/],
    ["a bad message id", { routingKey: "k", payload: 1, messageId: "42" }, /`messageId` to be a UUID/],
    ["a nested header", { routingKey: "k", payload: 1, headers: { h: { x: 1 } } }, /header `h`/],
    ["no payload", { routingKey: "k" }, /Expected `payload`/],
    // PostgreSQL text and jsonb cannot hold NUL: without the check these fail later with a raw Prisma error.
    ["a NUL in the routing key", { routingKey: "a\u0000b", payload: 1 }, /`routingKey` to have no NUL/],
    ["a NUL in the key", { routingKey: "k", payload: 1, key: "a\u0000" }, /`key` to have no NUL/],
    [
      "a NUL in a header value",
      { routingKey: "k", payload: 1, headers: { h: "a\u0000b" } },
      /`headers.h` to have no NUL/,
    ],
    [
      "a NUL in a header name",
      { routingKey: "k", payload: 1, headers: { "h\u0000": "v" } },
      /`headers key` to have no NUL/,
    ],
    ["a NUL in the type", { routingKey: "k", payload: 1, type: "t\u0000" }, /`type` to have no NUL/],
    // The inbox orders by this header: set by `key` only, never spoofed by a user header.
    ["a user x-ordering-key header", { routingKey: "k", payload: 1, headers: { "x-ordering-key": "a" } }, /reserved/],
    ["X-Ordering-Key in any case", { routingKey: "k", payload: 1, headers: { "X-Ordering-Key": "a" } }, /reserved/],
    [
      "an availableAt PostgreSQL cannot store",
      { routingKey: "k", payload: 1, availableAt: new Date(-8_640_000_000_000_000) },
      /`availableAt` to be between the years 1 and 9999/,
    ],
  ])("%s is refused with OutboxMessageError and nothing is written", async (_, message, text) => {
    await expect(prisma.$enqueue([{ routingKey: "ok", payload: 1 }, message as never])).rejects.toThrow(text);
    await expect(prisma.$enqueue(message as never)).rejects.toBeInstanceOf(OutboxMessageError);
    expect(await rows()).toEqual([]);
  });

  it("a declared event whose record cannot be stored rolls back the model write outside a transaction", async () => {
    const strict = base.$extends(
      outbox<typeof base>({
        queue: false,
        events: { Customer: { create: (c) => ({ exchange: "e", routingKey: "k", payload: { id: BigInt(c.id) } }) } },
      }),
    );
    await expect(strict.customer.create({ data: { email: "x@y.z" } })).rejects.toBeInstanceOf(OutboxPayloadError);
    expect(Number((await pool.query('SELECT count(*) FROM "Customer"')).rows[0].count)).toBe(0);
  });
});

describe("options", () => {
  it.each([
    [{ events: { Order: { createMany: true } } }, /createMany returns only a count.*createManyAndReturn/],
    [{ events: { Order: { deleteMany: true } } }, /deleteMany returns only a count/],
    [{ events: { Order: { findMany: true } } }, /not a write operation/],
    [{ exchange: "x", events: { Order: { create: 5 } } }, /true, a routing key .* or a function/],
    [{ events: { Order: { create: true } } }, /without an exchange/],
    [{ exchange: "" }, /`exchange` to be a string of 1 to 255 bytes/],
    [{ maxPayloadBytes: 0 }, /`maxPayloadBytes` to be an integer >= 1, got 0/],
    [{ events: [] }, /`events` to be an object keyed by model name/],
    [
      { transactionOptions: { timeout: 0 } },
      /`transactionOptions.timeout` to be an integer >= 1 \(milliseconds\), got 0/,
    ],
    [{ transactionOptions: { maxWait: 1.5 } }, /`transactionOptions.maxWait` to be an integer >= 1/],
    [
      { transactionOptions: { isolationLevel: "serializable" } },
      /one of ReadUncommitted, .*Serializable, got "serializable"/,
    ],
    [{ transactionOptions: { timout: 5 } }, /Unknown `transactionOptions` key `timout`/],
  ])("outbox(%j) throws OutboxConfigError at once", (options, message) => {
    expect(() => outbox(options as never)).toThrow(OutboxConfigError);
    expect(() => outbox(options as never)).toThrow(message);
  });
});

describe("NOTIFY", () => {
  let listener: import("pg").PoolClient;
  const notes: string[] = [];
  beforeAll(async () => {
    listener = await pool.connect();
    listener.on("notification", (n) => notes.push(n.channel));
    await listener.query("LISTEN prisma_outbox");
  });
  afterAll(() => listener.release());

  it("is delivered on commit and not on rollback", async () => {
    notes.length = 0;
    await prisma
      .$transaction(async (tx) => {
        await tx.$enqueue([
          { routingKey: "a", payload: 1 },
          { routingKey: "b", payload: 2 },
        ]);
        throw new Error("no");
      })
      .catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    expect(notes).toEqual([]);
    await prisma.$transaction(async (tx) => {
      await tx.$enqueue([
        { routingKey: "a", payload: 1 },
        { routingKey: "b", payload: 2 },
      ]);
    });
    // One notification for the committed transaction (two inserted rows fold into one), none for the rolled-back
    // one: PostgreSQL delivers in commit order, so it would have come first.
    await expect.poll(() => notes.length).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(notes).toEqual(["prisma_outbox"]);
  });
});
