// Declared events on real schemas: BigInt ids, Decimal, Bytes, DateTime, Json, lists, enums; one payload whatever
// the call site's select/include/omit; the client's global omit; model names as written in the schema.

import { PrismaPg } from "@prisma/adapter-pg";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { OutboxConfigError, OutboxPayloadError, outbox } from "../../src/index.js";
import { newPool, newPrismaClient, PrismaClient, useTestDatabase } from "../support/prisma.js";

const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const prisma = base.$extends(
  outbox<typeof base>({
    exchange: "billing",
    queue: false,
    events: {
      Invoice: { create: true, update: "invoice.changed", upsert: true, delete: true, createManyAndReturn: true },
      audit_log: { create: true },
    },
  }),
);

const issuedAt = new Date("2026-11-24T10:11:12.345Z");
const data = {
  number: "F-1",
  total: "12345678.90",
  scan: new Uint8Array([0, 1, 2, 250, 255]),
  issuedAt,
  meta: { vat: [20, "x"], nested: { ok: true } },
  tags: ["a", "b"],
  counts: [1n, 9007199254740993n],
  ratio: 0.25,
  kind: "credit" as const,
};
/** The documented JSON of the record above, with its id. */
const expected = (id: string) => ({
  id,
  number: "F-1",
  total: "12345678.9",
  scan: Buffer.from([0, 1, 2, 250, 255]).toString("base64"),
  issuedAt: "2026-11-24T10:11:12.345Z",
  meta: { vat: [20, "x"], nested: { ok: true } },
  tags: ["a", "b"],
  counts: ["1", "9007199254740993"],
  ratio: 0.25,
  secret: "s3cret",
  kind: "credit",
});

async function messages(): Promise<Array<{ routing_key: string; payload: unknown; raw: string }>> {
  return (await pool.query("SELECT routing_key, payload, payload::text AS raw FROM outbox_message ORDER BY id")).rows;
}

beforeEach(async () => {
  await pool.query('TRUNCATE outbox_message, "Invoice", "InvoiceLine", audit_log RESTART IDENTITY CASCADE');
  // Start BigInt ids past 2^53, so a lossy conversion through Number would show.
  await pool.query(`SELECT setval(pg_get_serial_sequence('"Invoice"', 'id'), 9007199254740993)`);
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe("the default payload is the record as JSON", () => {
  it("BigInt, Decimal, Bytes, DateTime, Json, lists, Float and enums, as docs/writing-messages.md's table says", async () => {
    const invoice = await prisma.invoice.create({ data });
    expect(typeof invoice.id).toBe("bigint");
    const [m] = await messages();
    expect(m?.routing_key).toBe("invoice.created");
    expect(m?.payload).toEqual(expected("9007199254740994"));
    // The bytes consumers receive: ids as exact decimal strings, never numbers.
    expect(m?.raw).toContain('"id":"9007199254740994"');
  });

  it("Float NaN and Infinity become strings; nulls stay null", async () => {
    await prisma.invoice.create({ data: { number: "F-2", total: "0.01", ratio: Number.NaN } });
    await prisma.invoice.update({ where: { number: "F-2" }, data: { ratio: Number.NEGATIVE_INFINITY } });
    const [created, updated] = await messages();
    expect(created?.payload).toMatchObject({ total: "0.01", ratio: "NaN", scan: null, meta: null, counts: [] });
    expect(updated?.payload).toMatchObject({ ratio: "-Infinity" });
  });

  it("update, upsert, delete and createManyAndReturn publish the same shape", async () => {
    const { id } = await prisma.invoice.create({ data });
    await prisma.invoice.update({ where: { id }, data: { total: "1.5" } });
    await prisma.invoice.upsert({ where: { id }, create: data, update: { tags: [] } });
    await prisma.invoice.createManyAndReturn({ data: [{ number: "F-3", total: 2 }] });
    await prisma.invoice.delete({ where: { id } });
    const rows = await messages();
    expect(rows.map((r) => r.routing_key)).toEqual([
      "invoice.created",
      "invoice.changed",
      "invoice.upserted",
      "invoice.created",
      "invoice.deleted",
    ]);
    const keys = Object.keys(expected("0"));
    for (const row of rows) expect(Object.keys(row.payload as object)).toEqual(keys);
    expect(rows[1]?.payload).toMatchObject({ total: "1.5" });
    expect(rows[4]?.payload).toMatchObject({ id: String(id), tags: [] });
  });
});

describe("one payload whatever the call site asks for", () => {
  it("select: the payload has every field, the caller gets only what it selected", async () => {
    const invoice = await prisma.invoice.create({ data, select: { number: true, lines: true } });
    expect(invoice).toEqual({ number: "F-1", lines: [] });
    const [m] = await messages();
    expect(m?.payload).toEqual(expected("9007199254740994"));
  });

  it("select with fields set to false", async () => {
    const invoice = await prisma.invoice.create({ data, select: { id: true, total: false } });
    expect(Object.keys(invoice)).toEqual(["id"]);
    expect((await messages())[0]?.payload).toEqual(expected("9007199254740994"));
  });

  it("omit: the payload keeps the omitted fields, the caller does not get them", async () => {
    const invoice = await prisma.invoice.create({ data, omit: { secret: true, scan: true, meta: false } });
    expect("secret" in invoice).toBe(false);
    expect("scan" in invoice).toBe(false);
    expect(invoice.meta).toEqual(data.meta);
    expect((await messages())[0]?.payload).toEqual(expected("9007199254740994"));
  });

  it("include: the payload has no relations, the caller gets them", async () => {
    const invoice = await prisma.invoice.create({
      data: { ...data, lines: { create: [{ text: "one" }] } },
      include: { lines: true },
    });
    expect(invoice.lines).toHaveLength(1);
    expect((await messages())[0]?.payload).toEqual(expected("9007199254740994"));
  });

  it("createManyAndReturn and updateManyAndReturn with select narrow every record", async () => {
    const strict = base.$extends(
      outbox<typeof base>({
        exchange: "billing",
        queue: false,
        events: { Invoice: { createManyAndReturn: true, updateManyAndReturn: "invoice.bulk" } },
      }),
    );
    const created = await strict.invoice.createManyAndReturn({
      data: [
        { number: "A", total: 1 },
        { number: "B", total: 2 },
      ],
      select: { number: true },
    });
    expect(created).toEqual([{ number: "A" }, { number: "B" }]);
    const updated = await strict.invoice.updateManyAndReturn({ data: { ratio: 2 }, where: {}, omit: { tags: true } });
    expect(updated.every((u) => !("tags" in u))).toBe(true);
    const rows = await messages();
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(Object.keys(row.payload as object)).toEqual(Object.keys(expected("0")));
  });

  it("a function receives the full record as Prisma returns it, typed, whatever the caller selected", async () => {
    const seen: unknown[] = [];
    const typed = base.$extends(
      outbox<typeof base>({
        queue: false,
        events: {
          Invoice: {
            create: (invoice) => {
              seen.push(invoice);
              // Typed: a bigint and a Decimal, as the record really holds.
              const id: bigint = invoice.id;
              return {
                exchange: "e",
                routingKey: "k",
                payload: { id: id.toString(), total: invoice.total.toFixed(2) },
              };
            },
          },
        },
      }),
    );
    await typed.invoice.create({ data, select: { number: true } });
    expect(seen).toHaveLength(1);
    const record = seen[0] as Record<string, unknown>;
    expect(typeof record.id).toBe("bigint");
    expect(Object.keys(record)).toEqual(Object.keys(expected("0")));
    expect((await messages())[0]?.payload).toEqual({ id: "9007199254740994", total: "12345678.90" });
  });

  it("a function's own payload is still validated strictly: a BigInt there is an OutboxPayloadError", async () => {
    const strict = base.$extends(
      outbox<typeof base>({
        queue: false,
        events: { Invoice: { create: (i) => ({ exchange: "e", routingKey: "k", payload: { id: i.id } }) } },
      }),
    );
    const error = await strict.invoice.create({ data }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxPayloadError);
    expect((error as OutboxPayloadError).path).toBe("$.id");
    expect(Number((await pool.query('SELECT count(*) FROM "Invoice"')).rows[0].count)).toBe(0);
  });
});

describe("the client's global omit", () => {
  it("fields the client omits everywhere stay out of the payload and of the caller's result", async () => {
    const omitting = new PrismaClient({
      adapter: new PrismaPg({ connectionString: url }),
      omit: { invoice: { secret: true } },
    });
    try {
      const client = omitting.$extends(
        outbox<typeof omitting>({ exchange: "billing", queue: false, events: { Invoice: { create: true } } }),
      );
      const invoice = await client.invoice.create({ data, select: { number: true } });
      expect(invoice).toEqual({ number: "F-1" });
      const plain = await client.invoice.create({ data: { ...data, number: "F-2" } });
      expect("secret" in plain).toBe(false);
      const { secret: _, ...withoutSecret } = expected("0");
      for (const m of await messages()) expect(Object.keys(m.payload as object)).toEqual(Object.keys(withoutSecret));
    } finally {
      await omitting.$disconnect();
    }
  });
});

describe("model names", () => {
  it("a model named in lower case is declared by its schema name", async () => {
    await prisma.audit_log.create({ data: { note: "n" } });
    expect((await messages())[0]).toMatchObject({ routing_key: "audit_log.created", payload: { id: 1, note: "n" } });
  });

  it.each([
    ["Ordre", /`events.Ordre` names no model of this Prisma client\. Models: Order, Customer, .*Invoice/],
    ["invoice", /`events.invoice` names no model.*Did you mean `Invoice`/],
    ["AuditLog", /`events.AuditLog` names no model.*Did you mean `audit_log`/],
  ])("an unknown model key (%s) is an OutboxConfigError at $extends, listing the models", (key, message) => {
    const extension = outbox({ exchange: "x", queue: false, events: { [key]: { create: true } } });
    expect(() => base.$extends(extension)).toThrow(OutboxConfigError);
    expect(() => base.$extends(extension)).toThrow(message);
  });
});
