// The kit's matching and the words a failed expectation prints.
import { describe, expect, it } from "vitest";
import {
  type CapturedMessage,
  decodePayload,
  describeFilter,
  describeMessages,
  isSubset,
  matches,
  pairUp,
} from "../../src/testing/match.js";

const message = (routingKey: string, payload: unknown, extra: Partial<CapturedMessage> = {}): CapturedMessage => ({
  messageId: "m",
  exchange: "shop",
  routingKey,
  key: undefined,
  payload,
  headers: {},
  type: undefined,
  correlationId: undefined,
  queues: [],
  ...extra,
});

describe("isSubset", () => {
  it("matches nested objects as subsets, arrays by position and length, and primitives exactly", () => {
    expect(isSubset({ a: 1 }, { a: 1, b: 2 })).toBe(true);
    expect(isSubset({ a: { b: [1, { c: 2 }] } }, { a: { b: [1, { c: 2, d: 3 }] } })).toBe(true);
    expect(isSubset({ a: [1] }, { a: [1, 2] })).toBe(false);
    expect(isSubset({ a: 1 }, { a: "1" })).toBe(false);
    expect(isSubset({ a: undefined }, {})).toBe(true);
    expect(isSubset({ a: null }, {})).toBe(false);
    expect(isSubset({ a: 1 }, null)).toBe(false);
    expect(isSubset({ id: /^o-/ }, { id: "o-1" })).toBe(true);
    expect(isSubset({ n: (v: unknown) => typeof v === "number" && v > 2 }, { n: 3 })).toBe(true);
    expect(isSubset(Number.NaN, Number.NaN)).toBe(true);
  });
});

describe("matches", () => {
  it("checks every field given", () => {
    const m = message("order.created", { orderId: 1 }, { key: "order-1", type: "t" });
    expect(matches({}, m)).toBe(true);
    expect(matches({ routingKey: "order.created", payload: { orderId: 1 }, key: "order-1" }, m)).toBe(true);
    expect(matches({ routingKey: /^order\./ }, m)).toBe(true);
    expect(matches({ routingKey: "order.paid" }, m)).toBe(false);
    expect(matches({ exchange: "other" }, m)).toBe(false);
    expect(matches({ key: "order-2" }, m)).toBe(false);
    expect(matches({ type: "u" }, m)).toBe(false);
    expect(matches({ where: (x) => x.routingKey.endsWith("created") }, m)).toBe(true);
  });
});

describe("pairUp", () => {
  it("gives each filter its own message, so two expectations need two messages", () => {
    const one = [message("order.created", { orderId: 1 })];
    expect(pairUp([{ routingKey: "order.created" }, { routingKey: "order.created" }], one).unmatched).toEqual([1]);
    const two = [message("order.created", { orderId: 1 }), message("order.created", { orderId: 2 })];
    const paired = pairUp([{ payload: { orderId: 2 } }, { routingKey: "order.created" }], two);
    expect(paired.matched.map((m) => (m.payload as { orderId: number }).orderId)).toEqual([2, 1]);
    expect(paired.extra).toEqual([]);
  });
});

describe("what a failure prints", () => {
  it("names the filter's fields and lists the messages, escaped and cut short", () => {
    expect(describeFilter({ routingKey: "order.created", payload: { orderId: 2 } })).toBe(
      '{ routingKey: "order.created", payload: {"orderId":2} }',
    );
    expect(describeFilter({})).toBe("any message");
    const text = describeMessages([message("order.\u202ecreated", { note: "x".repeat(500) })]);
    expect(text).not.toContain("\u202e");
    expect(text).toContain("...");
    expect(describeMessages([])).toContain("(none)");
    const many = describeMessages(Array.from({ length: 25 }, (_, i) => message(`k${i}`, i)));
    expect(many).toContain("... and 5 more");
  });

  it("decodes JSON bodies, keeps other text as a string and other bytes as a Buffer", () => {
    expect(decodePayload(Buffer.from('{"a":1}'))).toEqual({ a: 1 });
    expect(decodePayload(Buffer.from("plain"))).toBe("plain");
    expect(Buffer.isBuffer(decodePayload(Buffer.from([0xff, 0xfe])))).toBe(true);
  });
});
