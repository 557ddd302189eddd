// The shared validation vocabulary (src/config/validate.ts) and the refusal of unknown option keys by every part
// that takes an options object. Database-free: nothing connects.
import { describe, expect, it } from "vitest";
import {
  closestName,
  describeChoices,
  enumOption,
  expectString,
  rejectUnknownKeys,
  stringOption,
} from "../../src/config/validate.js";
import {
  AmqpTransport,
  createRelay,
  inbox,
  MemoryTransport,
  OutboxConfigError,
  OutboxQueue,
  outbox,
  requests,
} from "../../src/index.js";

describe("byte-length strings", () => {
  it("count UTF-8 bytes, not characters", () => {
    expect(expectString("name", "é".repeat(127), { minBytes: 1, maxBytes: 255 })).toHaveLength(127);
    expect(() => expectString("name", "é".repeat(128), { minBytes: 1, maxBytes: 255 })).toThrow(
      /Expected `name` to be a string of 1 to 255 bytes, got "é{128}"\./,
    );
  });

  it.each([
    ["", { minBytes: 1, maxBytes: 5 }, 'Expected `s` to be a string of 1 to 5 bytes, got "".'],
    [42, { minBytes: 1, maxBytes: 5 }, "Expected `s` to be a string of 1 to 5 bytes, got 42."],
    ["abcdef", { maxBytes: 5 }, 'Expected `s` to be a string of at most 5 bytes, got "abcdef".'],
    [
      null,
      { maxBytes: 5, noun: "an exchange name" },
      "Expected `s` to be an exchange name of at most 5 bytes, got null.",
    ],
  ])("refuse %j (%j) with what to fix", (value, rule, message) => {
    expect(() => expectString("s", value, rule)).toThrow(OutboxConfigError);
    expect(() => expectString("s", value, rule)).toThrow(message);
  });

  it("an optional one takes its fallback when undefined, and the empty string when allowed", () => {
    expect(stringOption("s", undefined, "request.", { maxBytes: 200 })).toBe("request.");
    expect(stringOption("s", undefined, undefined, { maxBytes: 200 })).toBeUndefined();
    expect(stringOption("s", "", "request.", { maxBytes: 200 })).toBe("");
  });
});

describe("enums", () => {
  it("return the value or the fallback", () => {
    expect(enumOption("mode", undefined, ["stop", "continue"], "stop")).toBe("stop");
    expect(enumOption("mode", "continue", ["stop", "continue"], "stop")).toBe("continue");
    expect(enumOption("notify", false, [true, false, "in-transaction"], true)).toBe(false);
  });

  it.each([
    ["STOP", ["stop", "continue"], {}, 'Expected `mode` to be "stop" or "continue", got "STOP".'],
    [1, [true, false, "in-transaction"], {}, 'Expected `mode` to be true, false or "in-transaction", got 1.'],
    ["x", ["a", "b", "c", "d"], {}, 'Expected `mode` to be one of "a", "b", "c" or "d", got "x".'],
    ["x", ["a", "b", "c", "d"], { bare: true }, 'Expected `mode` to be one of a, b, c or d, got "x".'],
  ])("refuse %j among %j", (value, allowed, style, message) => {
    expect(() => enumOption("mode", value, allowed as unknown[], undefined, style)).toThrow(OutboxConfigError);
    expect(() => enumOption("mode", value, allowed as unknown[], undefined, style)).toThrow(message);
  });

  it("list their choices the same way everywhere", () => {
    expect(describeChoices(["text", "json"], true)).toBe("text or json");
    expect(describeChoices(["dead", "reject"])).toBe('"dead" or "reject"');
    expect(describeChoices(["only"])).toBe('"only"');
  });
});

describe("unknown keys", () => {
  it("name the key and the call, and suggest a close known name", () => {
    const known = ["sweepIntervalMs", "sweepMinAgeMs", "batchSize"];
    expect(() => rejectUnknownKeys("createRelay()", { sweepIntervalMS: 1 }, known)).toThrow(
      new OutboxConfigError("Unknown option `sweepIntervalMS` of createRelay(); did you mean `sweepIntervalMs`?"),
    );
    expect(() => rejectUnknownKeys("createRelay()", { batchsize: 1, frobnicate: 2 }, known)).toThrow(
      new OutboxConfigError("Unknown options of createRelay(): `batchsize` (did you mean `batchSize`?), `frobnicate`."),
    );
    expect(() => rejectUnknownKeys("createRelay()", { frobnicate: 2 }, known)).toThrow(
      "Unknown option `frobnicate` of createRelay(): known are sweepIntervalMs, sweepMinAgeMs, batchSize.",
    );
    expect(() => rejectUnknownKeys("transactionOptions", { timout: 5 }, ["maxWait", "timeout"])).toThrow(
      "Unknown `transactionOptions` key `timout`; did you mean `timeout`?",
    );
    expect(() => rejectUnknownKeys("createRelay()", { batchSize: 1 }, known)).not.toThrow();
  });

  it("suggest only names close enough to be a slip", () => {
    expect(closestName("concurency", ["concurrency", "batchSize"])).toBe("concurrency");
    expect(closestName("maxAtempts", ["maxAttempts"])).toBe("maxAttempts");
    expect(closestName("retries", ["maxAttempts", "batchSize"])).toBeUndefined();
  });

  const prisma = { $transaction: async () => {}, $executeRawUnsafe: async () => 0, $queryRawUnsafe: async () => [] };
  const relay = { databaseUrl: "postgres://h/db", amqpUrl: "amqp://h" };
  const box = { prisma, queue: { name: "q" }, handlers: { h: { on: "a", handle: async () => {} } } };
  it.each([
    ["outbox()", () => outbox({ exchange: "x", notifyIntervalMS: 5 } as never), "notifyIntervalMs"],
    ["createRelay()", () => createRelay({ ...relay, sweepIntervalMS: 10 } as never), "sweepIntervalMs"],
    ["inbox()", () => inbox({ ...box, prefech: 10 } as never), "prefetch"],
    [
      "requests()",
      () => requests({ prisma: { ...prisma, $enqueue: () => {} }, exchange: "x", retentionMS: 1 } as never),
      "retentionMs",
    ],
    [
      "new AmqpTransport()",
      () => new AmqpTransport({ url: "amqp://h", hearbeatSeconds: 5 } as never),
      "heartbeatSeconds",
    ],
    ["new OutboxQueue()", () => new OutboxQueue({ maxPendng: 5 } as never), "maxPending"],
  ])("%s refuses a misspelt option", (what, make, near) => {
    expect(make).toThrow(OutboxConfigError);
    expect(make).toThrow(
      new RegExp(`^Unknown option \`\\w+\` of ${what.replace(/[()]/g, "\\$&")}; did you mean \`${near}\`\\?$`),
    );
  });

  it("keep the hidden options the parts take", () => {
    expect(() => inbox({ ...box, guardHeaders: false } as never)).not.toThrow();
  });

  it("AmqpTransport checks the keys of `reconnect` too", () => {
    expect(() => new AmqpTransport({ url: "amqp://h", reconnect: { initialDelay: 5 } as never })).toThrow(
      "Unknown `reconnect` key `initialDelay`; did you mean `initialDelayMs`?",
    );
  });
});

describe("MemoryTransport options", () => {
  it("are durations", () => {
    expect(() => new MemoryTransport({ confirmLatencyMs: -1 })).toThrow(
      "Expected `confirmLatencyMs` to be an integer from 0 to 2147483647, got -1.",
    );
    expect(() => new MemoryTransport({ perMessageLatencyMs: 5 })).not.toThrow();
  });
});
