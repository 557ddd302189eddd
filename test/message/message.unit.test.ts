import { describe, expect, it } from "vitest";
import { normalizeMessage, serializePayload } from "../../src/message/message.js";
import { isUuid, uuidv7 } from "../../src/message/uuid.js";
import { backoffDelay } from "../../src/runtime/backoff.js";

describe("uuidv7", () => {
  it("is a version 7 UUID, time-ordered", () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    expect(isUuid(a)).toBe(true);
    expect(a[14]).toBe("7");
    expect(["8", "9", "a", "b"]).toContain(a[19]);
    expect(a < b).toBe(true);
    expect(new Set(Array.from({ length: 1000 }, () => uuidv7())).size).toBe(1000);
  });
});

describe("serializePayload", () => {
  it("keeps what JSON represents and uses toJSON (Date)", () => {
    const d = new Date("2026-01-01T00:00:00Z");
    expect(serializePayload({ a: [1, "x", null, true], d, skip: undefined })).toBe(
      '{"a":[1,"x",null,true],"d":"2026-01-01T00:00:00.000Z"}',
    );
  });
  it("accepts shared (non-circular) references", () => {
    const shared = { x: 1 };
    expect(serializePayload({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
  it.each([
    [[undefined], /\$\[0\] is undefined; JSON writes null/],
    [{ a: Infinity }, /\$\.a is Infinity/],
    [{ s: Symbol("x") }, /\$\.s is a symbol/],
    [{ b: new Uint8Array(2) }, /\$\.b is Uint8Array; encode binary data/],
    [{ s: new Set([1]) }, /\$\.s is Set/],
  ])("refuses %o", (value, message) => {
    expect(() => serializePayload(value)).toThrow(message);
  });
});

describe("normalizeMessage", () => {
  const limits = { maxPayloadBytes: 100 };
  it("fills defaults and lower-cases a given message id", () => {
    const m = normalizeMessage(
      { routingKey: "k", payload: 1, messageId: "0190A6E5-0000-7000-8000-00000000000A" },
      { exchange: "ex" },
      limits,
    );
    expect(m).toMatchObject({ exchange: "ex", routingKey: "k", payload: "1", headers: null, type: null });
    expect(m.messageId).toBe("0190a6e5-0000-7000-8000-00000000000a");
  });
  it("counts the payload limit in bytes of UTF-8", () => {
    expect(() => normalizeMessage({ exchange: "e", routingKey: "k", payload: "é".repeat(50) }, {}, limits)).toThrow(
      /payload is 102 bytes/,
    );
  });
  it("refuses a header whose value is not a scalar, and an invalid availableAt", () => {
    expect(() =>
      normalizeMessage({ exchange: "e", routingKey: "k", payload: 1, headers: { h: [1] as never } }, {}, limits),
    ).toThrow(/header `h`/);
    expect(() =>
      normalizeMessage({ exchange: "e", routingKey: "k", payload: 1, availableAt: new Date("nope") }, {}, limits),
    ).toThrow(/`availableAt` to be a valid Date/);
  });
});

describe("backoffDelay", () => {
  it("grows exponentially, with jitter between half and all of the capped delay", () => {
    expect(backoffDelay(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffDelay(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffDelay(4, 1000, 60_000, () => 1)).toBe(8000);
    expect(backoffDelay(20, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffDelay(1000, 1000, 60_000, () => 0.5)).toBe(45_000);
  });
});

describe("serializePayload and toJSON", () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  it.each([
    [{ id: { toJSON: () => 10n } }, /\$\.id is a BigInt/],
    [{ toJSON: () => ({ id: 10n }) }, /\$\.id is a BigInt/],
    [{ a: { toJSON: () => circular } }, /circular reference at \$\.a\.self/],
    [{ toJSON: () => undefined }, /\$ is undefined/],
    [{ d: new Date(Number.NaN) }, /\$\.d is Date; it is an invalid Date/],
    [{ n: new Number(Number.NaN) }, /\$\.n is NaN/],
  ])("checks what toJSON returns: %o", (value, message) => {
    expect(() => serializePayload(value)).toThrow(message);
  });
  it("passes the property name to toJSON, as JSON does", () => {
    expect(serializePayload({ k: { toJSON: (key: string) => `key:${key}` } })).toBe('{"k":"key:k"}');
  });
});
