// Row building without the database: what each delivery becomes before the INSERT (no servers needed).
import type { ConsumeMessage } from "amqplib";
import { describe, expect, it } from "vitest";
import {
  deliveryRows,
  jsonDeeperThan,
  leasedRows,
  MAX_JSON_DEPTH,
  type Received,
} from "../../src/inbox/delivery-rows.js";
import { resolveHandlers } from "../../src/inbox/handler-options.js";
import { HandlerRegistry } from "../../src/inbox/registry.js";
import type { Delivery } from "../../src/transport/transport.js";

const registry = new HandlerRegistry(
  resolveHandlers({
    effect: { on: "order.created", handle: async () => {} },
    audit: { pattern: "order.#", handle: async () => {} },
  }),
);

let tag = 0;
function received(body: unknown, props: Partial<Delivery> = {}, oversized = false): Received {
  const content = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const delivery: Delivery = {
    content,
    messageId: `m-${++tag}`,
    exchange: "shop",
    routingKey: "order.created",
    headers: undefined,
    type: undefined,
    correlationId: undefined,
    redelivered: false,
    tag: { generation: 1, deliveryTag: tag, message: {} as ConsumeMessage },
    ...props,
  };
  return { delivery, bytes: content.length, oversized };
}

describe("deliveryRows", () => {
  it("one pending row per matching handler, leasable unless keyed", () => {
    const plain = received({ id: 1 });
    const keyed = received({ id: 2 }, { headers: { "x-ordering-key": "customer-7" } });
    const { entries, leasable, invalid, rejected } = deliveryRows([plain, keyed], registry, "dead");
    expect(invalid).toEqual([]);
    expect(rejected).toEqual([]);
    expect(entries.map((e) => e.rows.map((r) => [r.handler, r.status, r.key]))).toEqual([
      [
        ["effect", "pending", null],
        ["audit", "pending", null],
      ],
      [
        ["effect", "pending", "customer-7"],
        ["audit", "pending", "customer-7"],
      ],
    ]);
    expect([...leasable.values()]).toEqual([{ id: 1 }, { id: 1 }]);
    expect(entries[0]!.rows[0]).toMatchObject({ messageId: plain.delivery.messageId, payload: '{"id":1}', body: null });
  });

  it("with a placeholder (unhandledGraceMs > 0), a delivery no handler takes waits as one pending row, never leased", () => {
    const nobody = received({ a: 1 }, { routingKey: "nobody.listens", headers: { "x-ordering-key": "k" } });
    const unkeyed = received({ a: 2 }, { routingKey: "nobody.listens" });
    const notJson = received(Buffer.from("not json"), { routingKey: "nobody.listens" });
    for (const policy of ["dead", "reject"] as const) {
      const { entries, leasable, invalid, rejected } = deliveryRows(
        [nobody, unkeyed, notJson],
        registry,
        policy,
        "(w) q",
      );
      expect(
        entries.slice(0, 2).map((e) => [e.invalid, e.rows.map((r) => [r.handler, r.status, r.key, r.payload])]),
      ).toEqual([
        [false, [["(w) q", "pending", "k", '{"a":1}']]],
        [false, [["(w) q", "pending", null, '{"a":2}']]],
      ]);
      expect(leasable.size).toBe(0);
      // An invalid delivery is invalid as before: waiting is for deliveries a handler could take.
      expect(invalid.map((i) => i.reason)).toEqual(["the body is not JSON"]);
      expect(rejected).toHaveLength(policy === "reject" ? 1 : 0);
    }
  });

  it("what cannot be handled or stored is one dead row with the reason, or rejected", () => {
    const batch = [
      received({ a: 1 }, { messageId: undefined }),
      received(Buffer.from("not json")),
      received({ a: 1 }, { routingKey: "nobody.listens" }),
      received({ a: 1 }, { type: "bad\0type" }),
      received({ a: 1 }, { headers: { "x-note": "nul\0here" } }),
      received(Buffer.alloc(0), {}, true),
    ];
    const dead = deliveryRows(batch, registry, "dead");
    expect(dead.rejected).toEqual([]);
    expect(dead.leasable.size).toBe(0);
    expect(dead.invalid.map((i) => i.reason)).toEqual([
      expect.stringMatching(/no messageId/),
      "the body is not JSON",
      expect.stringMatching(/no handler takes routing key "nobody.listens"/),
      expect.stringMatching(/the type "bad\\u0000type" contains a NUL character/),
      expect.stringMatching(/the header "x-note" contains a NUL character \(headers not kept\)/),
      expect.stringMatching(/above the limit of maxPayloadBytes/),
    ]);
    const rows = dead.entries.map((e) => e.rows[0]!);
    expect(rows.every((r) => r.status === "dead" && r.handler === "")).toBe(true);
    expect(rows[1]).toMatchObject({ payload: null, body: Buffer.from("not json") }); // kept as bytes
    expect(rows[3]).toMatchObject({ type: null }); // a NUL cannot be stored in text
    expect(rows[4]).toMatchObject({ headers: null });
    expect(rows[5]).toMatchObject({ body: null, payload: null }); // over maxPayloadBytes: not kept
    const reject = deliveryRows(batch, registry, "reject");
    expect(reject.entries).toEqual([]);
    expect(reject.rejected).toEqual(batch.map((r) => r.delivery));
  });

  it("caps: an ordering key over 255 bytes is dropped, a messageId over 255 bytes is invalid", () => {
    const longKey = received({ a: 1 }, { headers: { "x-ordering-key": "k".repeat(256) } });
    const longId = received({ a: 1 }, { messageId: "é".repeat(128) });
    const { entries, invalid } = deliveryRows([longKey, longId], registry, "dead");
    expect(entries[0]!.rows.map((r) => r.key)).toEqual([null, null]);
    expect(invalid).toEqual([{ delivery: longId.delivery, reason: "the messageId is longer than 255 bytes" }]);
    expect(entries[1]!.rows[0]).toMatchObject({ messageId: null, status: "dead" });
  });

  it("JSON nested deeper than PostgreSQL parses is kept as bytes", () => {
    const text = `${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}`;
    expect(jsonDeeperThan(text, MAX_JSON_DEPTH)).toBe(true);
    expect(jsonDeeperThan(`["${"[".repeat(MAX_JSON_DEPTH + 1)}"]`, MAX_JSON_DEPTH)).toBe(false); // inside a string
    const { entries, invalid } = deliveryRows([received(Buffer.from(text))], registry, "dead");
    expect(invalid[0]!.reason).toMatch(/nested deeper than 5000 levels/);
    expect(entries[0]!.rows[0]).toMatchObject({ payload: null, body: Buffer.from(text) });
  });

  it("leasedRows: the rows an INSERT leased, shaped as a claim returns them", () => {
    const r = received({ id: 9 }, { headers: { h: 1 } });
    const { leasable } = deliveryRows([r], registry, "dead");
    const [first] = leasable.keys();
    first!.leased = true;
    const at = new Date();
    const claimed = leasedRows(leasable, [
      {
        id: "41",
        status: "pending",
        leased_message_id: r.delivery.messageId!,
        leased_handler: "effect",
        leased_received_at: at,
      },
    ]);
    expect(claimed).toEqual([
      expect.objectContaining({ id: "41", handler: "effect", payload: { id: 9 }, headers: { h: 1 }, attempts: 1 }),
    ]);
  });
});
