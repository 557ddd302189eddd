// outbox() among other extensions, applied before and after them: every extension's hooks run once per write, the
// write and its message commit together (or neither does), every client method stays reachable, and the
// transaction of a declared write made outside any transaction takes the `transactionOptions` of outbox().
import { Prisma } from "@prisma/client/extension";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { OutboxQueue, outbox } from "../../src/index.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { countRows } from "../support/tables.js";

const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);

/** What the hooks saw: extension name, model.operation, and the kind of transaction the write ran in. */
const calls: string[] = [];

// A stamping extension: rewrites the data of every Order.create (as soft-delete or tenant extensions rewrite
// arguments), and adds a client method.
const stamp = Prisma.defineExtension({
  name: "stamp",
  client: {
    $stamped() {
      return "stamp";
    },
  },
  query: {
    order: {
      async create({ args, query, ...rest }) {
        const tx = (rest as { __internalParams?: { transaction?: { kind: string } } }).__internalParams?.transaction;
        calls.push(`stamp:Order.create:${tx?.kind ?? "none"}`);
        return query({ ...args, data: { ...(args.data as object), status: "stamped" } } as typeof args);
      },
    },
  },
});

// An observing extension on every operation of every model (as logging or read-replica routing extensions), with a
// client method.
const observe = Prisma.defineExtension({
  name: "observe",
  client: {
    $observed() {
      return "observe";
    },
  },
  query: {
    $allModels: {
      async $allOperations({ model, operation, args, query, ...rest }) {
        const tx = (rest as { __internalParams?: { transaction?: { kind: string } } }).__internalParams?.transaction;
        calls.push(`observe:${model}.${operation}:${tx?.kind ?? "none"}`);
        return query(args);
      },
    },
  },
});

const queue = new OutboxQueue({ concurrency: 1 });
const handed: string[] = [];
queue.attach(async (ids) => {
  handed.push(...ids);
});
const withOutbox = () => outbox<typeof base>({ exchange: "shop", queue, events: { Order: { create: true } } });

const chains = {
  "outbox first": base.$extends(withOutbox()).$extends(stamp).$extends(observe),
  "outbox last": base.$extends(stamp).$extends(observe).$extends(withOutbox()),
  "outbox between": base.$extends(stamp).$extends(withOutbox()).$extends(observe),
};

const count = (table: string) => countRows(pool, table);

beforeEach(async () => {
  await pool.query('TRUNCATE outbox_message, "Order", "Customer" RESTART IDENTITY CASCADE');
  calls.length = 0;
  handed.length = 0;
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe.each(Object.entries(chains))("%s", (_name, prisma) => {
  it("a declared write outside a transaction: every hook once, the write and its message in one transaction", async () => {
    const order = await prisma.order.create({ data: { number: "A-1", amount: 3 } });
    expect(order.status).toBe("stamped");
    const stamps = calls.filter((c) => c.startsWith("stamp:"));
    const observed = calls.filter((c) => c.startsWith("observe:"));
    expect(stamps).toHaveLength(1);
    expect(observed).toHaveLength(1);
    const { rows } = await pool.query("SELECT id::text, payload FROM outbox_message");
    expect(rows).toHaveLength(1);
    expect(rows[0].payload).toMatchObject({ number: "A-1", status: "stamped" });
    await queue.onIdle();
    expect(handed).toEqual([rows[0].id]);
  });

  it("hooks of extensions applied before outbox() run inside the write's transaction", async () => {
    await prisma.order.create({ data: { number: "A-2", amount: 3 } });
    // Prisma runs query hooks in the order the extensions were applied. One applied after outbox() is further down
    // the chain: it runs inside the transaction outbox() opened. One applied before ran already, outside it, once.
    const after: string[] | undefined = (
      { "outbox first": ["stamp", "observe"], "outbox last": [], "outbox between": ["observe"] } as Record<
        string,
        string[]
      >
    )[_name];
    const before = ["stamp", "observe"].filter((n) => !after?.includes(n));
    for (const name of after ?? []) expect(calls).toContainEqual(expect.stringMatching(`^${name}:Order.create:itx$`));
    for (const name of before) expect(calls).toContainEqual(expect.stringMatching(`^${name}:Order.create:none$`));
    expect(calls).toHaveLength(2);
  });

  it("a failing write leaves neither the row nor a message, and hands nothing over", async () => {
    await prisma.order.create({ data: { number: "dup", amount: 1 } });
    await expect(prisma.order.create({ data: { number: "dup", amount: 2 } })).rejects.toThrow();
    expect(await count('"Order"')).toBe(1);
    expect(await count("outbox_message")).toBe(1);
  });

  it("inside an interactive transaction: rollback loses both, commit hands over after COMMIT", async () => {
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { number: "R", amount: 1 } });
        await tx.$enqueue({ routingKey: "extra", payload: 1 });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await count("outbox_message")).toBe(0);
    await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { number: "C", amount: 1 } });
      await tx.$enqueue({ routingKey: "extra", payload: 1 });
      expect(calls.filter((c) => c.includes("Order.create")).every((c) => c.endsWith(":itx"))).toBe(true);
    });
    expect(await count("outbox_message")).toBe(2);
    await queue.onIdle();
    expect(handed).toHaveLength(2);
  });

  it("every extension's client methods are reachable", () => {
    expect(prisma.$stamped()).toBe("stamp");
    expect(prisma.$observed()).toBe("observe");
    expect(typeof prisma.$enqueue).toBe("function");
  });
});

describe("transactionOptions", () => {
  // Slows every Order.create down; applied after outbox(), it runs inside the transaction outbox() opens.
  const slow = Prisma.defineExtension({
    query: {
      order: {
        async create({ args, query }) {
          await new Promise((r) => setTimeout(r, 400));
          return query(args);
        },
      },
    },
  });

  it("the transaction of a declared write outside any transaction takes outbox()'s timeout", async () => {
    const tight = base
      .$extends(
        outbox<typeof base>({
          exchange: "shop",
          queue: false,
          events: { Order: { create: true } },
          transactionOptions: { timeout: 100 },
        }),
      )
      .$extends(slow);
    await expect(tight.order.create({ data: { number: "T-1", amount: 1 } })).rejects.toThrow(
      /Transaction|timeout|expired/i,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(await count('"Order"')).toBe(0);
    expect(await count("outbox_message")).toBe(0);
    // Without the option, Prisma's default (5 s) lets the same write through.
    const loose = base.$extends(withOutbox()).$extends(slow);
    await loose.order.create({ data: { number: "T-2", amount: 1 } });
    expect(await count('"Order"')).toBe(1);
  });

  it("isolationLevel reaches the transaction", async () => {
    const serializable = base
      .$extends(
        outbox<typeof base>({
          exchange: "shop",
          queue: false,
          events: { Order: { create: true } },
          transactionOptions: { isolationLevel: "Serializable" },
        }),
      )
      .$extends(slow);
    // Prisma's queries start when awaited or then-ed: start this one now.
    const write = serializable.order.create({ data: { number: "S", amount: 1 } }).then((order) => order);
    // While the slow hook holds the open transaction, its session's last statement is the one that set the level.
    let rows: Array<{ query: string }> = [];
    for (let i = 0; i < 100 && rows.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      rows = (
        await pool.query(
          "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'",
        )
      ).rows;
    }
    await write;
    expect(rows.map((r) => r.query)).toEqual(["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"]);
    expect(await count("outbox_message")).toBe(1);
  });
});
