// The CloudEvents mapping without a broker: what the relay writes (cloudEventHeaders), what the write side refuses
// (normalizeMessage), and what the inbox reads from untrusted headers (readCloudEvent), with a reason for each
// malformed attribute. The official `cloudevents` SDK checks that what we write and expose is a valid CloudEvent.
import { CloudEvent } from "cloudevents";
import { describe, expect, it } from "vitest";
import { OutboxMessageError } from "../../src/errors.js";
import { cloudEventHeaders, readCloudEvent } from "../../src/message/cloud-events.js";
import { normalizeMessage } from "../../src/message/message.js";
import { cloudEventsOption } from "../../src/relay/cloud-events.js";

const ID = "0190f3c4-5f6e-7a8b-9c0d-1e2f3a4b5c6d";
const CREATED = Date.parse("2026-12-03T10:11:12.345Z");
const valid = {
  "cloudEvents:specversion": "1.0",
  "cloudEvents:id": "evt-1",
  "cloudEvents:source": "urn:example:billing",
  "cloudEvents:type": "com.example.invoice.paid",
};

describe("cloudEventHeaders (the relay's mapping)", () => {
  it("maps id, type (AMQP type, else routing key), source and time, keeping the message's headers", () => {
    const plain = cloudEventHeaders(
      { messageId: ID, routingKey: "order.created", type: undefined, createdAt: CREATED },
      { tenant: "t1" },
      "/shop/orders",
    );
    expect(plain).toEqual({
      tenant: "t1",
      "cloudEvents:specversion": "1.0",
      "cloudEvents:id": ID,
      "cloudEvents:source": "/shop/orders",
      "cloudEvents:type": "order.created",
      "cloudEvents:time": "2026-12-03T10:11:12.345Z",
    });
    const typed = cloudEventHeaders(
      { messageId: ID, routingKey: "order.created", type: "com.shop.order.created", createdAt: CREATED },
      undefined,
      "/shop/orders",
    );
    expect(typed["cloudEvents:type"]).toBe("com.shop.order.created");
    // What a consumer reads back is a valid CloudEvent for the SDK.
    const reading = readCloudEvent(typed);
    expect(reading?.ok).toBe(true);
    if (!reading?.ok) return;
    expect(new CloudEvent({ ...reading.attributes, data: { n: 1 } }).validate()).toBe(true);
  });

  it("a message's own cloudEvents: headers choose its source, type, time, subject and extensions", () => {
    const headers = cloudEventHeaders(
      { messageId: ID, routingKey: "order.created", type: "t", createdAt: CREATED },
      {
        "cloudEvents:source": "/other",
        "cloudEvents:type": "com.x",
        "cloudEvents:time": "2020-01-01T00:00:00Z",
        "cloudEvents:subject": "order/1",
        "cloudEvents:tenant": "t1",
      },
      "/shop",
    );
    expect(headers).toMatchObject({
      "cloudEvents:source": "/other",
      "cloudEvents:type": "com.x",
      "cloudEvents:time": "2020-01-01T00:00:00Z",
      "cloudEvents:subject": "order/1",
      "cloudEvents:tenant": "t1",
      "cloudEvents:id": ID,
    });
  });
});

describe("the write side refuses cloudEvents: headers a consumer would refuse", () => {
  const write = (headers: Record<string, string | number | boolean | null>) =>
    normalizeMessage({ routingKey: "r", payload: 1, headers }, { exchange: "x" }, { maxPayloadBytes: 1_000 });
  it.each([
    [{ "cloudEvents:id": "x" }, /relay sets `cloudEvents:id`/],
    [{ "cloudEvents:specversion": "1.0" }, /relay sets/],
    [{ "cloudevents:subject": "s" }, /prefix of CloudEvents attributes is "cloudEvents:"/],
    [{ "cloudEvents:Tenant": "t" }, /lower-case letters and digits/],
    [{ "cloudEvents:time": "yesterday" }, /not an RFC 3339 timestamp/],
    [{ "cloudEvents:source": "has space" }, /not a URI-reference/],
    [{ "cloudEvents:type": 7 }, /must be a string/],
    [{ "cloudEvents:dataschema": "no-scheme" }, /not an absolute URI/],
    [{ "cloudEvents:big": 2 ** 40 }, /32-bit integer/],
    [{ "cloudEvents:ratio": 0.5 }, /32-bit integer/],
    [{ "cloudEvents:none": null }, /32-bit integer/],
  ])("%j", (headers, message) => {
    expect(() => write(headers)).toThrow(OutboxMessageError);
    expect(() => write(headers)).toThrow(message);
  });
  it("accepts valid ones", () => {
    expect(
      write({ "cloudEvents:subject": "s", "cloudEvents:time": "2020-01-01T00:00:00+02:00", "cloudEvents:n": 3 })
        .headers,
    ).toContain("cloudEvents:subject");
  });
});

describe("readCloudEvent (untrusted input)", () => {
  it("is undefined without cloudEvents: headers", () => {
    expect(readCloudEvent(undefined)).toBeUndefined();
    expect(readCloudEvent({ "x-ordering-key": "k" })).toBeUndefined();
  });

  it("reads the attributes; a native AMQP timestamp and a byte array in their canonical string forms", () => {
    const reading = readCloudEvent({
      ...valid,
      other: "kept out",
      "cloudEvents:time": { "!": "timestamp", value: 1_764_756_672 },
      "cloudEvents:blob": Buffer.from([1, 2, 3]),
      "cloudEvents:count": 3,
      "cloudEvents:flag": true,
    });
    expect(reading).toEqual({
      ok: true,
      attributes: {
        specversion: "1.0",
        id: "evt-1",
        source: "urn:example:billing",
        type: "com.example.invoice.paid",
        time: "2025-12-03T10:11:12.000Z",
        blob: "AQID",
        count: 3,
        flag: true,
      },
    });
  });

  it.each([
    [{ ...valid, "cloudEvents:specversion": undefined }, "cloudEvents:specversion is missing"],
    [{ ...valid, "cloudEvents:specversion": "0.3" }, 'cloudEvents:specversion is "0.3"; only "1.0" is read'],
    [{ ...valid, "cloudEvents:id": undefined }, "cloudEvents:id is missing"],
    [{ ...valid, "cloudEvents:source": undefined }, "cloudEvents:source is missing"],
    [{ ...valid, "cloudEvents:type": undefined }, "cloudEvents:type is missing"],
    [{ ...valid, "cloudEvents:id": 42 }, "cloudEvents:id must be a string, got 42"],
    [{ ...valid, "cloudEvents:id": "" }, "cloudEvents:id must not be empty"],
    [{ ...valid, "cloudEvents:type": Buffer.from("t") }, "cloudEvents:type must be a string, got a byte array"],
    [{ ...valid, "cloudEvents:source": { a: 1 } }, 'cloudEvents:source must be a string, got {"a":1}'],
    [{ ...valid, "cloudEvents:source": "a b" }, 'cloudEvents:source is not a URI-reference: "a b"'],
    [{ ...valid, "cloudEvents:time": "12/03/2026" }, 'cloudEvents:time is not an RFC 3339 timestamp: "12/03/2026"'],
    [{ ...valid, "cloudEvents:ext": [1] }, "cloudEvents:ext must be a string, a boolean or a 32-bit integer, got [1]"],
    [
      { ...valid, "cloudevents:id": "x" },
      'the header "cloudevents:id" is not a CloudEvents attribute: the prefix is "cloudEvents:"',
    ],
    [
      { ...valid, "cloudEvents:Ext": "x" },
      '"cloudEvents:Ext" is not a CloudEvents attribute name (lower-case letters and digits)',
    ],
  ])("malformed: %j", (headers, reason) => {
    const cleaned = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined));
    expect(readCloudEvent(cleaned)).toEqual({ ok: false, reason });
  });

  it("shows an untrusted value escaped and cut", () => {
    const reading = readCloudEvent({ ...valid, "cloudEvents:time": `\u001b[31m${"x".repeat(500)}` });
    expect(reading?.ok).toBe(false);
    if (reading?.ok !== false) return;
    expect(reading.reason).not.toContain("\u001b");
    expect(reading.reason.length).toBeLessThan(120);
  });
});

describe("the relay's cloudEvents option", () => {
  it("takes { source } or false, and refuses the rest", () => {
    expect(cloudEventsOption("cloudEvents", undefined)).toBeUndefined();
    expect(cloudEventsOption("cloudEvents", false)).toBeUndefined();
    expect(cloudEventsOption("cloudEvents", { source: "/shop" })).toEqual({ source: "/shop" });
    expect(() => cloudEventsOption("cloudEvents", true)).toThrow("Expected `cloudEvents` to be an object");
    expect(() => cloudEventsOption("cloudEvents", {})).toThrow("Expected `cloudEvents.source` to be a URI-reference");
    expect(() => cloudEventsOption("cloudEvents", { source: "a b" })).toThrow("URI-reference");
    expect(() => cloudEventsOption("cloudEvents", { source: "/s", sorce: 1 })).toThrow("Unknown `cloudEvents` key");
  });
});
